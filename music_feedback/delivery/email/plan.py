"""Planning the day's email: who gets asked, in which campaign, when, and who is held out.

The selection goes through the serving query (GetCandidatesForChannel: minScore, limit, per-track cap)
over the day's batch, ranked over every status, so re-planning picks the same rows; the ledger keeps
rows already planned as they are.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import polars as pl

from music_feedback.delivery.holdout import held_out
from music_feedback.feedback.port import LEDGER_SCHEMA, FeedbackStore
from music_feedback.programs.model import Program
from music_feedback.store.base import CandidateStore, ChannelQuery, page_key

# Pages as large as a day's default limit: the whole selection in one pass. On DynamoDB each page reads
# the channel's shards again from its position, and small pages read each shard's head many times.
PAGE = 100_000


def send_zone(program: Program, marketplace: str) -> str:
    """The IANA zone of a marketplace's sendTime: its own (timezone: local) or the channel's one zone."""
    config = program.channel("email").typed_config()
    return program.time_zone(marketplace) if config.timezone == "local" else config.timezone


def send_window(program: Program, marketplace: str, batch_day: date) -> tuple[float, float]:
    """(send_at, send_before) in epoch seconds: sendTime in the marketplace's zone on D+1, plus the maximum
    lateness. Where sendTime on D+1 comes before day D has ended in UTC (10:00 east of UTC+10, as in
    Pacific/Kiritimati), no batch can hold the day yet: it is sendTime on D+2."""
    config = program.channel("email").typed_config()
    zone = ZoneInfo(send_zone(program, marketplace))
    hour, minute = map(int, config.send_time.split(":"))
    day_ended = datetime.combine(batch_day + timedelta(days=1), time(), tzinfo=timezone.utc)
    send_at = datetime.combine(batch_day + timedelta(days=1), time(hour, minute), tzinfo=zone)
    if send_at < day_ended:
        send_at = datetime.combine(batch_day + timedelta(days=2), time(hour, minute), tzinfo=zone)
    return send_at.timestamp(), (send_at + timedelta(hours=config.max_lateness_hours)).timestamp()


def campaign(marketplace: str, genre: str | None) -> str:
    return f"{marketplace}-{(genre or 'other').replace(' ', '-')}"


def select(program: Program, store: CandidateStore, batch_day: date, now: datetime) -> pl.DataFrame:
    """The day's email candidates through the serving query, best first."""
    channel = program.channel("email")
    config = channel.typed_config()
    query = ChannelQuery(program.program_id, channel.channel_id, min_score=config.min_score,
                         max_per_track=config.max_per_track, status=None, batch_date=batch_day.isoformat())
    cutoffs = store.track_cutoffs(query, now)
    rows: list[dict] = []
    after = None
    while len(rows) < config.limit:
        size = min(PAGE, config.limit - len(rows))
        page = store.channel_page(query, after, size, cutoffs, now)
        rows.extend(page)
        if len(page) < size:  # a short page is the last
            break
        after = page_key(page[-1])
    columns = ["listener_id", "track_id", "score", "marketplace", "genre", "track_name", "artist_id"]
    return pl.DataFrame([{c: r[c] for c in columns} for r in rows],
                        schema={c: LEDGER_SCHEMA[c] for c in columns})


def ledger_rows(program: Program, selected: pl.DataFrame, batch_day: date) -> pl.DataFrame:
    windows = {m: send_window(program, m, batch_day) for m in selected["marketplace"].unique().to_list()}
    return selected.with_columns(
        pl.lit(batch_day.isoformat()).alias("batch_date"),
        pl.lit(program.channel("email").channel_id).alias("channel"),
        pl.when(held_out(program, selected["listener_id"])).then(pl.lit("held_out")).otherwise(pl.lit("pending"))
        .alias("state"),
        pl.struct("marketplace", "genre").map_elements(lambda r: campaign(r["marketplace"], r["genre"]),
                                                       return_dtype=pl.Utf8).alias("campaign"),
        pl.col("marketplace").replace_strict({m: w[0] for m, w in windows.items()}, return_dtype=pl.Float64)
        .alias("send_at"),
        pl.col("marketplace").replace_strict({m: w[1] for m, w in windows.items()}, return_dtype=pl.Float64)
        .alias("send_before"),
    ).select(list(LEDGER_SCHEMA))


def plan(program: Program, store: CandidateStore, feedback: FeedbackStore, batch_day: date, now: datetime
         ) -> dict:
    """Write the day's requests to the ledger (pending, or held_out); returns counts for the asset. The day's
    limit counts what is planned already: a batch re-run that moves new rows into the top does not add more
    than the limit allows."""
    rows = ledger_rows(program, select(program, store, batch_day, now), batch_day)
    channel = program.channel("email").channel_id
    planned = feedback.ledger_frame(program.program_id, batch_day.isoformat()).filter(pl.col("channel") == channel)
    room = max(program.channel("email").typed_config().limit - planned.height, 0)
    new = rows.join(planned.select("listener_id", "track_id"), on=["listener_id", "track_id"], how="anti").head(room)
    added = feedback.plan(program.program_id, new)
    by_campaign = dict(rows.group_by("campaign").len().sort("campaign").iter_rows())
    return {"selected": rows.height, "added": added,
            "held_out": int((rows["state"] == "held_out").sum()), "campaigns": by_campaign}
