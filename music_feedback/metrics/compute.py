"""The day's metrics, from what the batch, the ledger, the events and the answers recorded.

Day D is a batch day: its requests go out on D+1, so its funnel counts what happened to batch D's requests.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

import polars as pl
from dagster import AssetKey, AssetRecordsFilter, DagsterInstance

from music_feedback.feedback.port import FeedbackStore
from music_feedback.metrics.sink import Metric
from music_feedback.programs.model import Program
from music_feedback.scoring.combine import band_labels, score_distribution
from music_feedback.warehouse.port import Warehouse, date_literal

BATCH_ASSETS = ("raw_streams", "unified_candidates", "filtered_candidates", "listener_features", "track_features",
                "scored_candidates", "stored_candidates")
Z95 = 1.959964


CHANNEL_STAGES = {"email": ("delivered", "opened", "opened_human", "clicked", "submitted"),
                  "voice": ("delivered", "submitted")}  # a voice prompt is neither opened nor clicked
STAGES = CHANNEL_STAGES["email"]
STAGE_LABELS = {"delivered": "delivered", "opened": "opened", "opened_human": "opened (human)",
                "clicked": "clicked", "submitted": "submitted"}
# Batch day D's requests go out on D+1; the lift counts plays of the asked track in the week after: D+2..D+8.
LIFT_FIRST_DAY, LIFT_LAST_DAY = 2, 8


@dataclass
class DayMetrics:
    metrics: list[Metric] = field(default_factory=list)
    funnel: pl.DataFrame = field(default_factory=pl.DataFrame)  # channel, marketplace, sent ... submitted
    summary: dict = field(default_factory=dict)  # the figures, for code
    rows: list[tuple[str, str, str]] = field(default_factory=list)  # (section, measure, value with unit), for people
    lift: dict = field(default_factory=dict)

    def add(self, name: str, value, unit: str = "Count", **dims) -> None:
        if value is not None and not (isinstance(value, float) and math.isnan(value)):
            self.metrics.append(Metric(name, float(value), unit, {k: str(v) for k, v in dims.items()}))

    def row(self, section: str, measure: str, value) -> None:
        self.rows.append((section, measure, "n/a" if value is None else str(value)))


def count(n) -> str:
    return "n/a" if n is None else f"{int(n):,}"


def percent(share) -> str:
    """A share in [0, 1] as a percentage."""
    return "n/a" if share is None else f"{100 * share:.1f} %"


def money(amount, currency: str, digits: int = 2) -> str:
    return "n/a" if amount is None else f"{amount:,.{digits}f} {currency}"


def channel_kinds(program: Program) -> dict[str, str]:
    """channel id -> channel type (email, voice)."""
    return {c.channel_id: c.type for c in program.channels}


def stages_of(program: Program, channel: str) -> tuple[str, ...]:
    return CHANNEL_STAGES.get(channel_kinds(program).get(channel, ""), STAGES)


def batch_metadata(instance: DagsterInstance, program: Program, day: str) -> dict[str, dict]:
    out = {}
    for name in BATCH_ASSETS:
        result = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey([program.slug, name]), asset_partitions=[day]), limit=1)
        if result.records:
            meta = result.records[0].asset_materialization.metadata
            out[name] = {k: getattr(v, "value", v) for k, v in meta.items()}
    return out


def processing(m: DayMetrics, program: Program, meta: dict[str, dict], scored: pl.DataFrame) -> None:
    seconds = sum(float(v.get("duration_s", 0) or 0) for v in meta.values())
    raw = meta.get("raw_streams", {}).get("dagster/row_count")
    unified = meta.get("unified_candidates", {}).get("dagster/row_count")
    kept = meta.get("filtered_candidates", {}).get("dagster/row_count")
    bands = program.metrics.score_bands
    dist = score_distribution(scored["score"], bands) if scored.height else None
    m.add("BatchDuration", seconds, "Seconds")
    m.add("BatchThroughput", raw / seconds if raw and seconds else None, "Count/Second")
    m.add("FilterPassRate", 100 * kept / unified if unified else None, "Percent")
    m.add("HighScoreRate", 100 * dist["high"] if dist else None, "Percent")
    for band, share in (dist or {}).items():
        m.add("ScoreBandShare", 100 * share, "Percent", Band=band)
    m.add("CandidatesScored", scored.height)
    cache = meta.get("scored_candidates", {}).get("score_cache_hit_rate")
    m.add("ScoreCacheHitRate", 100 * cache if cache is not None else None, "Percent")
    m.summary.update(batch_s=round(seconds, 1), raw_records=raw, candidates=unified, eligible=kept,
                     scored=scored.height, high_score_rate=dist["high"] if dist else None)
    m.row("Processing", "batch time", f"{seconds:,.1f} s")
    m.row("Processing", "raw records", count(raw))
    m.row("Processing", "candidates (unified)", count(unified))
    m.row("Processing", "eligible (kept by the filters)",
          f"{count(kept)} ({percent(kept / unified)} of candidates)" if kept is not None and unified else count(kept))
    m.row("Processing", "scored", count(scored.height))
    for band, label in band_labels(bands).items():
        m.row("Processing", f"score band {label}", f"{percent(dist[band])} of scored" if dist else "n/a")
    m.row("Processing", "score cache hit rate", percent(cache))


def funnel(program: Program, feedback: FeedbackStore, day: str) -> pl.DataFrame:
    """Per channel and marketplace: delivered, opened (raw and human), clicked, submitted."""
    ledger = feedback.ledger_frame(program.program_id, day)
    sent = ledger.filter(pl.col("state") == "sent").select("listener_id", "track_id", "channel", "marketplace")
    events = []
    # A day's opens and clicks come after its batch: read from the day before it on (a margin for time
    # zones), never every event the program ever had.
    since = datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=timezone.utc).timestamp() - 86_400
    for kind in ("open", "click"):
        rows = [{**e["detail"], "kind": kind} for e in feedback.events(program.program_id, kind, since=since)
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
    counts = pl.exclude("channel", "marketplace")
    return out.fill_null(0).with_columns(counts.cast(pl.Int64)).sort("channel", "marketplace")


def delivery(m: DayMetrics, program: Program, table: pl.DataFrame, ledger_counts: dict[str, int]) -> None:
    for row in table.iter_rows(named=True):
        dims = {"Channel": row["channel"], "Marketplace": row["marketplace"]}
        m.add("Delivered", row["delivered"], **dims)
        for name, col in (("Opened", "opened"), ("OpenedHuman", "opened_human"), ("Clicked", "clicked"),
                          ("Submitted", "submitted")):
            if col in stages_of(program, row["channel"]):
                m.add(name, row[col], **dims)
                m.add(f"{name}Rate", 100 * row[col] / row["delivered"] if row["delivered"] else None, "Percent",
                      **dims)
    attempted = ledger_counts.get("sent", 0) + ledger_counts.get("failed", 0)
    m.add("SendErrorRate", 100 * ledger_counts.get("failed", 0) / attempted if attempted else None, "Percent")
    m.add("Expired", ledger_counts.get("expired", 0))
    m.add("HeldOut", ledger_counts.get("held_out", 0))
    by_channel = {}  # one funnel per channel: a voice answer is no step of the email funnel
    for channel in (table["channel"].unique().sort().to_list() if table.height else []):
        totals = table.filter(pl.col("channel") == channel).select(pl.exclude("channel", "marketplace").sum())
        stages = stages_of(program, channel)
        by_channel[channel] = {s: int(totals[s][0]) for s in stages}
        for stage in stages:
            n, delivered = by_channel[channel][stage], by_channel[channel]["delivered"]
            share = f" ({percent(n / delivered)} of delivered)" if stage != "delivered" and delivered else ""
            m.row(f"Delivery: {channel}", STAGE_LABELS[stage], count(n) + share)
    m.row("Delivery", "requests by state", ", ".join(f"{state.replace('_', ' ')} {count(n)}"
                                                     for state, n in sorted(ledger_counts.items())) or "none")
    m.row("Delivery", "send error rate", percent(ledger_counts.get("failed", 0) / attempted if attempted else None))
    m.summary.update(funnel=by_channel, ledger=ledger_counts)


def business(m: DayMetrics, program: Program, table: pl.DataFrame, lift: dict) -> None:
    answers = int(table["submitted"].sum()) if table.height else 0
    costs, currency = program.metrics.unit_costs, program.metrics.currency
    by_channel = dict(table.group_by("channel").agg(pl.col("delivered").sum()).iter_rows()) if table.height else {}
    kinds = channel_kinds(program)
    cost = sum(n * costs.get(kinds.get(ch, ch), 0.0) for ch, n in by_channel.items())
    per_answer = cost / answers if answers else None
    m.add("FeedbackVolume", answers)
    m.add("Cost", cost, "None", Currency=currency)
    m.add("CostPerFeedback", per_answer, "None", Currency=currency)
    if lift.get("status") == "measured":
        m.add("HoldoutLift", lift["lift_pp"], "Percent")  # percentage points
        m.add("HoldoutLiftCI95Low", lift["ci95_pp"][0], "Percent")
        m.add("HoldoutLiftCI95High", lift["ci95_pp"][1], "Percent")
    m.lift = lift
    m.summary.update(feedback=answers, cost=round(cost, 2), currency=currency,
                     cost_per_feedback=round(per_answer, 4) if per_answer is not None else None, lift=lift)
    m.row("Business", "feedback (answers)", count(answers))
    m.row("Business", "cost", money(cost, currency))
    m.row("Business", "cost per feedback", money(per_answer, currency, 4))
    m.row("Business", "holdout lift", lift_text(lift))


def lift_text(lift: dict) -> str:
    if lift.get("status") != "measured":
        return f"not measured: {lift.get('detail', lift.get('status', 'unknown'))}"
    low, high = lift["ci95_pp"]
    return (f"{lift['lift_pp']:+.2f} pp (95 % interval {low:+.2f} to {high:+.2f} pp): "
            f"{percent(lift['treated_rate'])} of {count(lift['treated'])} asked against "
            f"{percent(lift['holdout_rate'])} of {count(lift['held_out'])} held out played the track again "
            f"from {lift['window_start']} to {lift['window_end']}")


def lift_window(day: date) -> tuple[date, date]:
    """First and last day (inclusive) whose plays count for batch day `day`'s lift."""
    return day + timedelta(days=LIFT_FIRST_DAY), day + timedelta(days=LIFT_LAST_DAY)


def last_play_day(warehouse: Warehouse) -> date | None:
    """The latest day the warehouse holds plays of: how far the lift windows can be measured."""
    last = warehouse.fetch("SELECT CAST(MAX(played_at) AS DATE) AS last_day FROM track_plays")["last_day"][0]
    return date.fromisoformat(str(last)[:10]) if last is not None else None


def later_plays(warehouse: Warehouse, track_ids: list[int], start: date, end: date) -> pl.DataFrame:
    """Distinct (listener_id, track_id) plays of the tracks in [start, end): the holdout's outcome."""
    tracks = ", ".join(str(int(t)) for t in track_ids)
    return warehouse.fetch(f"SELECT DISTINCT listener_id, track_id FROM track_plays WHERE track_id IN ({tracks}) "
                           f"AND played_at >= {date_literal(start)} AND played_at < {date_literal(end)}")


def holdout_lift(program: Program, feedback: FeedbackStore, warehouse: Warehouse, day: str) -> dict:
    """Later plays of the asked track over the whole window D+2..D+8: treated against held out, with a 95%
    interval for the difference. Measured only once the warehouse holds plays through D+8, so a run before
    that says it is waiting, and every run after gives the same figures (the window comes from the day)."""
    first, last = lift_window(date.fromisoformat(day))
    out = {"window_start": first.isoformat(), "window_end": last.isoformat()}
    ledger = feedback.ledger_frame(program.program_id, day).filter(pl.col("state").is_in(["sent", "held_out"]))
    if ledger.is_empty():
        return {**out, "status": "no requests", "detail": "the day has no sent or held-out requests"}
    through = last_play_day(warehouse)
    out["plays_through"] = through.isoformat() if through else None
    if through is None or through < last:
        return {**out, "status": "waiting",
                "detail": f"the window {first}..{last} needs plays through {last}; the warehouse has plays "
                          f"through {through or 'no day yet'}"}
    pairs = ledger.select("listener_id", "track_id", "state").unique()
    plays = later_plays(warehouse, pairs["track_id"].unique().to_list(), first, last + timedelta(days=1))
    played = pairs.join(plays.with_columns(pl.lit(True).alias("played")), on=["listener_id", "track_id"], how="left")
    rates = played.group_by("state").agg(pl.col("played").fill_null(False).mean().alias("rate"), pl.len().alias("n"))
    got = {r["state"]: r for r in rates.iter_rows(named=True)}
    if "held_out" not in got or "sent" not in got:
        return {**out, "status": "no comparison",
                "detail": f"the day has no {'held-out' if 'sent' in got else 'asked'} listeners to compare with"}
    p1, n1, p0, n0 = got["sent"]["rate"], got["sent"]["n"], got["held_out"]["rate"], got["held_out"]["n"]
    half = Z95 * math.sqrt(p1 * (1 - p1) / n1 + p0 * (1 - p0) / n0)
    diff = p1 - p0
    return {**out, "status": "measured", "treated_rate": round(p1, 4), "holdout_rate": round(p0, 4),
            "treated": n1, "held_out": n0, "lift_pp": round(100 * diff, 3),
            "ci95_pp": [round(100 * (diff - half), 3), round(100 * (diff + half), 3)]}
