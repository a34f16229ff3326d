"""daily_metrics: the day's processing, delivery, business and technical metrics, published to the metrics
sink, and the daily report (HTML with charts) with its summary in the asset's metadata."""

import base64

import polars as pl
from dagster import AssetExecutionContext, AssetIn, MaterializeResult, MetadataValue, asset

from music_feedback import settings
from music_feedback.defs.common import OWNER, Stopwatch, key
from music_feedback.defs.partitions import batch_date
from music_feedback.feedback.port import FeedbackStore
from music_feedback.metrics import compute
from music_feedback.metrics.report import summary_markdown, write_report
from music_feedback.metrics.sink import MetricsSink
from music_feedback.playlists.store import PlaylistStore
from music_feedback.programs.model import Program
from music_feedback.warehouse.port import Warehouse

LIFT_STATUS = "lift_status"  # metadata key: measured, waiting, no requests, no comparison


def build_metrics(program: Program, partitions):
    @asset(key=key(program, "daily_metrics"), group_name=program.slug, owners=[OWNER], kinds={"html"},
           partitions_def=partitions, ins={"scored": AssetIn(key(program, "scored_candidates"))},
           deps=[key(program, "curated_playlists"), key(program, "listener_feedback")],
           description="The day's metrics: processing (batch time, throughput, pass and high-score rates), "
                       "delivery (delivered, opened raw and human, clicked, submitted, by channel and marketplace), "
                       "business (feedback, cost per feedback in the program's currency, lift over the holdout "
                       "once the warehouse holds its whole window D+2..D+8) and technical (cache hit rate, send "
                       "error rate), published to the metrics sink, and the daily report.")
    def daily_metrics(context: AssetExecutionContext, feedback_store: FeedbackStore, warehouse: Warehouse,
                      playlist_store: PlaylistStore, metrics_sink: MetricsSink, scored: pl.DataFrame
                      ) -> MaterializeResult:
        day = batch_date(context).isoformat()
        watch = Stopwatch()
        m = compute.DayMetrics()
        compute.processing(m, program, compute.batch_metadata(context.instance, program, day), scored)
        m.funnel = compute.funnel(program, feedback_store, day)
        compute.delivery(m, program, m.funnel, feedback_store.ledger_counts(program.program_id, day))
        compute.business(m, program, m.funnel, compute.holdout_lift(program, feedback_store, warehouse, day))
        answers = feedback_store.answers(program.program_id, float("inf")).filter(pl.col("batch_date") == day)
        audit = playlist_store.audit(program.program_id)
        moves = audit.filter(pl.col("run_date") == day).select(
            "marketplace", "genre", "track_name", "action", "votes", "score") if audit.height else audit
        folder = settings.data_home() / "reports" / program.program_id / day
        report = write_report(folder, f"{program.program_name}: {day}", program, m, scored, answers, moves)
        published = metrics_sink.publish(program.program_id, day, m.metrics)  # last: a failure leaves the report
        chart = base64.b64encode((folder / "funnel.png").read_bytes()).decode()
        lift = m.lift
        return MaterializeResult(metadata={
            "summary": MetadataValue.md(summary_markdown(m.rows) + f"\n\n![funnel](data:image/png;base64,{chart})"),
            "report": MetadataValue.path(str(report)), "metrics_published": published,
            "metrics_sink": metrics_sink.describe(), "feedback": m.summary.get("feedback", 0),
            # the holdout-lift sensor re-runs the day while this says "waiting"
            LIFT_STATUS: lift.get("status", "unknown"),
            "lift_window": f"{lift.get('window_start')}..{lift.get('window_end')}",
            **({"lift_pp": lift["lift_pp"], "lift_ci95_low_pp": lift["ci95_pp"][0],
                "lift_ci95_high_pp": lift["ci95_pp"][1]} if lift.get("status") == "measured" else {}),
            "duration_s": round(watch.total, 3)})

    return daily_metrics
