"""stored_candidates: the day's scored candidates written to the candidate store, one row per channel."""

from datetime import date, datetime, time, timedelta, timezone

import polars as pl
from dagster import AssetCheckSpec, AssetExecutionContext, AssetIn, MaterializeResult, MetadataValue, asset

from music_feedback.assets.common import OWNER, Stopwatch, batch_date, key, preview
from music_feedback.programs.model import Program
from music_feedback.quality.checks import run_stats_suite, zero
from music_feedback.store.base import CANDIDATE_COLUMNS, CandidateStore

SAMPLE_LISTENERS = 200
READ_BACK_STATS = ("stored_minus_written", "sample_rows_missing", "sample_rows_unexpected")

STORE_COLUMNS = list(CANDIDATE_COLUMNS)


def expires_at(day: date, ttl_days: int) -> int:
    """TTL counts from the batch's run day (D+1), so re-running a day writes the same rows."""
    run_day = datetime.combine(day + timedelta(days=1), time(), tzinfo=timezone.utc)
    return int((run_day + timedelta(days=ttl_days)).timestamp())


def channel_rows(program: Program, scored: pl.DataFrame | pl.LazyFrame, day: date) -> pl.DataFrame:
    """One row per candidate and enabled channel it can reach (voice needs a voice-enabled listener)."""
    # Only the stored columns are read and copied per channel, not all ~40 of the scored frame.
    scored = scored.lazy()
    scored = scored.select([c for c in (*STORE_COLUMNS, "voice_enabled")
                            if c in scored.collect_schema().names()]).collect()
    parts = []
    for channel in program.enabled_channels():
        rows = scored if channel.type == "email" else scored.filter(pl.col("voice_enabled").fill_null(False))
        parts.append(rows.with_columns(pl.lit(channel.channel_id).alias("channel")))
    frame = pl.concat(parts) if parts else scored.clear().with_columns(pl.lit("").alias("channel"))
    return frame.with_columns(pl.lit(expires_at(day, program.candidate_ttl_days)).alias("expires_at"),
                              pl.col("artist_id").cast(pl.Int64)).select(STORE_COLUMNS)


def read_back_stats(store: CandidateStore, program: Program, rows: pl.DataFrame, day: date) -> dict:
    """What the store returns for the day against what was scored: the day's count, and the exact rows
    (track, channel, score) of a deterministic sample of listeners, read through the serving path."""
    as_of = datetime.combine(day + timedelta(days=1), time(), tzinfo=timezone.utc)  # a backfill is not yet expired
    listeners = rows.select(pl.col("listener_id").unique().sort()).to_series()
    sample = listeners.gather_every(max(len(listeners) // SAMPLE_LISTENERS, 1)).to_list() if len(listeners) else []
    expected = {(r["listener_id"], r["track_id"], r["channel"], round(r["score"], 9))
                for r in rows.filter(pl.col("listener_id").is_in(sample)).iter_rows(named=True)}
    got = {(r["listener_id"], r["track_id"], r["channel"], round(float(r["score"]), 9))
           for lst in sample for r in store.for_listener(program.program_id, lst, now=as_of)
           if r["batch_date"] == day.isoformat()}
    return {"stored_minus_written": store.count(program.program_id, day.isoformat(), now=as_of) - rows.height,
            "sample_rows_missing": len(expected - got), "sample_rows_unexpected": len(got - expected)}


def build_store(program: Program, partitions):
    asset_key = key(program, "stored_candidates")

    @asset(
        key=asset_key, group_name=program.slug, owners=[OWNER], kinds={"sqlite"},
        check_specs=[AssetCheckSpec("store_returns_what_was_scored", asset=asset_key, blocking=True,
                                    partitions_def=partitions,
                                    description="The store's count for the day equals the rows written, and a "
                                                "sample of listeners reads back exactly their scored rows.")],
        partitions_def=partitions, ins={"scored": AssetIn(key(program, "scored_candidates"))},
        description=f"Scored candidates in the candidate store, per channel, expiring "
                    f"{program.candidate_ttl_days} days after the batch runs. Re-running a day replaces its rows.",
    )
    def stored_candidates(context: AssetExecutionContext, candidate_store: CandidateStore,
                          scored: pl.LazyFrame) -> MaterializeResult:
        day = batch_date(context)
        watch = Stopwatch()
        rows = channel_rows(program, scored, day)
        written = candidate_store.put_batch(program.program_id, day.isoformat(), rows)
        by_channel = dict(rows.group_by("channel").len().sort("channel").iter_rows())
        check = run_stats_suite(asset_key, "store_returns_what_was_scored",
                                read_back_stats(candidate_store, program, rows, day), zero(*READ_BACK_STATS))
        return MaterializeResult(check_results=[check], metadata={
            "dagster/row_count": written, "candidates": scored.select(pl.len()).collect().item(), "rows_by_channel": by_channel,
            "duration_s": round(watch.total, 3), "preview": preview(rows, ["listener_id", "track_id", "channel",
                                                                           "score", "marketplace"]),
            "expires_at": MetadataValue.timestamp(float(expires_at(day, program.candidate_ttl_days)))})

    return stored_candidates
