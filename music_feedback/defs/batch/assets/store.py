"""stored_candidates: the day's scored candidates written to the candidate store, one row per channel,
a chunk of scored candidates at a time (settings.batch_chunk_rows), so memory follows the chunk."""

from datetime import date, datetime, time, timedelta, timezone

import polars as pl
from dagster import AssetExecutionContext, AssetIn, MaterializeResult, MetadataValue, asset

from music_feedback import settings
from music_feedback.defs.common import OWNER, PREVIEW_ROWS, Stopwatch, key, preview
from music_feedback.defs.partitions import batch_date
from music_feedback.programs.model import Program
from music_feedback.store.base import CANDIDATE_COLUMNS, CandidateStore

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


def build_store(program: Program, partitions):
    asset_key = key(program, "stored_candidates")

    @asset(
        key=asset_key, group_name=program.slug, owners=[OWNER], kinds={"sqlite"},
        partitions_def=partitions, ins={"scored": AssetIn(key(program, "scored_candidates"))},
        description=f"Scored candidates in the candidate store, per channel, expiring "
                    f"{program.candidate_ttl_days} days after the batch runs. Re-running a day replaces its rows.",
    )
    def stored_candidates(context: AssetExecutionContext, candidate_store: CandidateStore,
                          scored: pl.LazyFrame) -> MaterializeResult:
        day = batch_date(context)
        watch = Stopwatch()
        chunk_rows = settings.batch_chunk_rows()
        total = scored.select(pl.len()).collect().item()  # the Parquet footer
        seen: dict = {}

        def chunks():
            """The store rows a chunk of scored candidates at a time (the store may ask twice)."""
            seen.update(by_channel={}, first=None)
            for offset in range(0, max(total, 1), chunk_rows):
                rows = channel_rows(program, scored if total <= chunk_rows else scored.slice(offset, chunk_rows), day)
                for channel, n in rows.group_by("channel").len().iter_rows():
                    seen["by_channel"][channel] = seen["by_channel"].get(channel, 0) + n
                seen["first"] = rows.head(PREVIEW_ROWS) if seen["first"] is None else seen["first"]
                yield rows

        written = candidate_store.put_batch_chunks(program.program_id, day.isoformat(), chunks)
        by_channel = dict(sorted(seen["by_channel"].items()))
        return MaterializeResult(metadata={
            "dagster/row_count": written, "candidates": total, "rows_by_channel": by_channel,
            "duration_s": round(watch.total, 3), "preview": preview(seen["first"], ["listener_id", "track_id", "channel",
                                                                                   "score", "marketplace"]),
            "expires_at": MetadataValue.timestamp(float(expires_at(day, program.candidate_ttl_days)))})

    return stored_candidates
