"""daily_metrics: the day's processing, delivery, business and technical metrics, published to the metrics
sink, and the daily report (HTML with charts) with its summary in the asset's metadata."""

import base64
import json

import polars as pl
from dagster import AssetExecutionContext, AssetIn, MaterializeResult, MetadataValue, asset

from music_feedback import settings
from music_feedback.assets.common import OWNER, Stopwatch, batch_date, key
from music_feedback.feedback.port import FeedbackStore
from music_feedback.metrics import compute
from music_feedback.metrics.report import write_report
from music_feedback.metrics.sink import MetricsSink
from music_feedback.playlists.store import PlaylistStore
from music_feedback.programs.model import Program
from music_feedback.warehouse.port import Warehouse


def build_metrics(program: Program, partitions):
    @asset(key=key(program, "daily_metrics"), group_name=program.slug, owners=[OWNER], kinds={"html"},
           partitions_def=partitions, ins={"scored": AssetIn(key(program, "scored_candidates"))},
           deps=[key(program, "curated_playlists"), key(program, "listener_feedback")],
           description="The day's metrics: processing (batch time, throughput, pass and high-score rates), "
                       "delivery (delivered, opened raw and human, clicked, submitted, by channel and marketplace), "
                       "business (feedback, cost per feedback, lift over the holdout) and technical (cache hit "
                       "rate, send error rate), published to the metrics sink, and the daily report.")
    def daily_metrics(context: AssetExecutionContext, feedback_store: FeedbackStore, warehouse: Warehouse,
                      playlist_store: PlaylistStore, metrics_sink: MetricsSink, scored: pl.DataFrame
                      ) -> MaterializeResult:
        day = batch_date(context).isoformat()
        watch = Stopwatch()
        m = compute.DayMetrics()
        compute.processing(m, compute.batch_metadata(context.instance, program, day), scored)
        table = compute.funnel(program, feedback_store, day)
        compute.delivery(m, table, feedback_store.ledger_counts(program.program_id, day))
        compute.business(m, program, table, compute.holdout_lift(program, feedback_store, warehouse, day))
        answers = feedback_store.answers(program.program_id, float("inf")).filter(pl.col("batch_date") == day)
        audit = playlist_store.audit(program.program_id)
        moves = audit.filter(pl.col("run_date") == day).select(
            "marketplace", "genre", "track_name", "action", "votes", "score") if audit.height else audit
        folder = settings.data_home() / "reports" / program.program_id / day
        report = write_report(folder, f"{program.program_name}: {day}", m.summary, table, scored, answers, moves)
        published = metrics_sink.publish(program.program_id, day, m.metrics)  # last: a failure leaves the report
        chart = base64.b64encode((folder / "funnel.png").read_bytes()).decode()
        lines = [f"- **{k}**: {json.dumps(v) if isinstance(v, (dict, list)) else v}" for k, v in m.summary.items()]
        return MaterializeResult(metadata={
            "summary": MetadataValue.md("\n".join(lines) + f"\n\n![funnel](data:image/png;base64,{chart})"),
            "report": MetadataValue.path(str(report)), "metrics_published": published,
            "metrics_sink": metrics_sink.describe(), "feedback": m.summary.get("feedback", 0),
            "duration_s": round(watch.total, 3)})

    return daily_metrics
