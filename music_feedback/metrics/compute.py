"""The day's metrics, from what the batch, the ledger, the events and the answers recorded.

Day D is a batch day: its requests go out on D+1, so its funnel counts what happened to batch D's requests.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, timedelta

import polars as pl
from dagster import AssetKey, AssetRecordsFilter, DagsterInstance

from music_feedback.feedback.port import FeedbackStore
from music_feedback.metrics.sink import Metric
from music_feedback.programs.model import Program
from music_feedback.warehouse.port import Warehouse, date_literal

BATCH_ASSETS = ("raw_streams", "unified_candidates", "filtered_candidates", "listener_features", "track_features",
                "scored_candidates", "stored_candidates")
Z95 = 1.959964


@dataclass
class DayMetrics:
    metrics: list[Metric] = field(default_factory=list)
    funnel: pl.DataFrame = field(default_factory=pl.DataFrame)  # channel, marketplace, sent ... submitted
    summary: dict = field(default_factory=dict)

    def add(self, name: str, value, unit: str = "Count", **dims) -> None:
        if value is not None and not (isinstance(value, float) and math.isnan(value)):
            self.metrics.append(Metric(name, float(value), unit, {k: str(v) for k, v in dims.items()}))


def batch_metadata(instance: DagsterInstance, program: Program, day: str) -> dict[str, dict]:
    out = {}
    for name in BATCH_ASSETS:
        result = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey([program.slug, name]), asset_partitions=[day]), limit=1)
        if result.records:
            meta = result.records[0].asset_materialization.metadata
            out[name] = {k: getattr(v, "value", v) for k, v in meta.items()}
    return out


def processing(m: DayMetrics, meta: dict[str, dict], scored: pl.DataFrame) -> None:
    seconds = sum(float(v.get("duration_s", 0) or 0) for v in meta.values())
    raw = meta.get("raw_streams", {}).get("dagster/row_count")
    unified = meta.get("unified_candidates", {}).get("dagster/row_count")
    kept = meta.get("filtered_candidates", {}).get("dagster/row_count")
    m.add("BatchDuration", seconds, "Seconds")
    m.add("BatchThroughput", raw / seconds if raw and seconds else None, "Count/Second")
    m.add("FilterPassRate", 100 * kept / unified if unified else None, "Percent")
    high = float((scored["score"] >= 0.6).mean()) if scored.height else None
    m.add("HighScoreRate", 100 * high if high is not None else None, "Percent")
    m.add("CandidatesScored", scored.height)
    cache = meta.get("scored_candidates", {}).get("score_cache_hit_rate")
    m.add("ScoreCacheHitRate", 100 * cache if cache is not None else None, "Percent")
    m.summary.update(batch_s=round(seconds, 1), raw_records=raw, candidates=unified, eligible=kept,
                     high_score_rate=round(high, 3) if high is not None else None)


def funnel(program: Program, feedback: FeedbackStore, day: str) -> pl.DataFrame:
    """Per channel and marketplace: delivered, opened (raw and human), clicked, submitted."""
    ledger = feedback.ledger_frame(program.program_id, day)
    sent = ledger.filter(pl.col("state") == "sent").select("listener_id", "track_id", "channel", "marketplace")
    events = []
    for kind in ("open", "click"):
        rows = [{**e["detail"], "kind": kind} for e in feedback.events(program.program_id, kind)
                if e["detail"].get("batch_date") == day]
        if rows:
            events.append(pl.DataFrame(rows).select("listener_id", "track_id", "channel", "kind",
                                                    pl.col("likely_machine").cast(pl.Boolean)))
    events = pl.concat(events) if events else pl.DataFrame(schema={"listener_id": pl.Int64, "track_id": pl.Int64,
                                                                     "channel": pl.Utf8, "kind": pl.Utf8,
                                                                     "likely_machine": pl.Boolean})
    answers = feedback.answers(program.program_id, float("inf")).filter(pl.col("batch_date") == day)
    keys = ["listener_id", "track_id", "channel"]

    def reached(frame: pl.DataFrame, name: str) -> pl.DataFrame:
        return sent.join(frame.select(keys).unique(), on=keys, how="semi").group_by("channel", "marketplace").len(name)

    opened = events.filter(pl.col("kind") == "open")
    parts = [sent.group_by("channel", "marketplace").len("delivered"), reached(opened, "opened"),
             reached(opened.filter(~pl.col("likely_machine")), "opened_human"),
             reached(events.filter(pl.col("kind") == "click"), "clicked"), reached(answers, "submitted")]
    out = parts[0]
    for part in parts[1:]:
        out = out.join(part, on=["channel", "marketplace"], how="left")
    return out.fill_null(0).sort("channel", "marketplace")


def delivery(m: DayMetrics, table: pl.DataFrame, ledger_counts: dict[str, int]) -> None:
    for row in table.iter_rows(named=True):
        dims = {"Channel": row["channel"], "Marketplace": row["marketplace"]}
        m.add("Delivered", row["delivered"], **dims)
        for name, col in (("Opened", "opened"), ("OpenedHuman", "opened_human"), ("Clicked", "clicked"),
                          ("Submitted", "submitted")):
            m.add(name, row[col], **dims)
            m.add(f"{name}Rate", 100 * row[col] / row["delivered"] if row["delivered"] else None, "Percent", **dims)
    attempted = ledger_counts.get("sent", 0) + ledger_counts.get("failed", 0)
    m.add("SendErrorRate", 100 * ledger_counts.get("failed", 0) / attempted if attempted else None, "Percent")
    m.add("Expired", ledger_counts.get("expired", 0))
    m.add("HeldOut", ledger_counts.get("held_out", 0))
    totals = table.select(pl.exclude("channel", "marketplace").sum()).to_dicts()[0] if table.height else {}
    m.summary.update(funnel={k: int(v) for k, v in totals.items()}, ledger=ledger_counts)


def business(m: DayMetrics, program: Program, table: pl.DataFrame, lift: dict) -> None:
    answers = int(table["submitted"].sum()) if table.height else 0
    costs = program.metrics.unit_costs
    by_channel = dict(table.group_by("channel").agg(pl.col("delivered").sum()).iter_rows()) if table.height else {}
    kinds = {c.channel_id: c.type for c in program.channels}
    cost = sum(n * costs.get(kinds.get(ch, ch), 0.0) for ch, n in by_channel.items())
    m.add("FeedbackVolume", answers)
    m.add("CostPerFeedback", cost / answers if answers else None, "None")
    m.add("HoldoutLift", lift.get("lift_pp"), "Percent")
    m.summary.update(feedback=answers, cost=round(cost, 2),
                     cost_per_feedback=round(cost / answers, 4) if answers else None, lift=lift)


def later_plays(warehouse: Warehouse, track_ids: list[int], start: date, end: date) -> pl.DataFrame:
    """Distinct (listener_id, track_id) plays of the tracks in [start, end): the holdout's outcome."""
    tracks = ", ".join(str(int(t)) for t in track_ids)
    return warehouse.fetch(f"SELECT DISTINCT listener_id, track_id FROM track_plays WHERE track_id IN ({tracks}) "
                           f"AND played_at >= {date_literal(start)} AND played_at < {date_literal(end)}")


def holdout_lift(program: Program, feedback: FeedbackStore, warehouse: Warehouse, day: str) -> dict:
    """Later plays of the asked track (the 7 days after the send day): treated against held out, with a 95%
    interval for the difference; unknown until the warehouse has plays after the send day."""
    ledger = feedback.ledger_frame(program.program_id, day).filter(pl.col("state").is_in(["sent", "held_out"]))
    if ledger.is_empty():
        return {"status": "no requests"}
    send_day = date.fromisoformat(day) + timedelta(days=1)
    start, end = send_day + timedelta(days=1), send_day + timedelta(days=8)
    plays = later_plays(warehouse, ledger["track_id"].unique().to_list(), start, end)
    if plays.is_empty():
        return {"status": f"no plays after {send_day} in the warehouse yet"}
    played = ledger.join(plays.with_columns(pl.lit(True).alias("played")), on=["listener_id", "track_id"], how="left")
    rates = played.group_by("state").agg(pl.col("played").fill_null(False).mean().alias("rate"), pl.len().alias("n"))
    got = {r["state"]: r for r in rates.iter_rows(named=True)}
    if "held_out" not in got or "sent" not in got:
        return {"status": "no holdout or no treated listeners"}
    p1, n1, p0, n0 = got["sent"]["rate"], got["sent"]["n"], got["held_out"]["rate"], got["held_out"]["n"]
    half = Z95 * math.sqrt(p1 * (1 - p1) / n1 + p0 * (1 - p0) / n0)
    diff = p1 - p0
    return {"status": "measured", "treated_rate": round(p1, 4), "holdout_rate": round(p0, 4), "treated": n1,
            "held_out": n0, "lift_pp": round(100 * diff, 3), "ci95_pp": [round(100 * (diff - half), 3),
                                                                         round(100 * (diff + half), 3)]}
