"""unified_candidates: one row per listener+track with marketplace, genre and event metadata."""

import polars as pl
from dagster import AssetCheckSpec, AssetExecutionContext, AssetIn, Output, asset

from music_feedback.assets.common import OWNER, Stopwatch, batch_date, frame_metadata, key
from music_feedback.assets.warehouse_tables import reads
from music_feedback.programs.model import Program
from music_feedback.quality.checks import run_stats_suite, started, zero
from music_feedback.transforms.unify import packable, pair_key, unify
from music_feedback.warehouse import queries as q
from music_feedback.warehouse.port import Warehouse

REQUIRED = ("listener_id", "track_id", "play_count", "completion_rate", "engagement_score",
            "first_played_at", "track_release_date")


UNIFY_STATS = ("rows_minus_raw_pairs", "duplicate_pairs", "plays_lost", "null_required_fields",
               "missing_context")


def distinct_pairs(frame: pl.DataFrame | pl.LazyFrame) -> int:
    """Distinct listener+track pairs: one int64 key hashed when the ids fit one, else counted on the
    sorted keys (a third of the memory of hashing two columns)."""
    frame = frame.lazy()
    if packable(frame):
        keys = frame.select(pair_key()).collect().to_series()
        if keys.len() < 2 or (keys.diff().slice(1) > 0).all():  # strictly increasing, as the unify sorts it:
            return keys.len()  # all distinct, without hashing 1.5M keys
        return keys.n_unique()
    keys = frame.select("listener_id", "track_id").sort("listener_id", "track_id").collect()
    new_pair = (pl.col("listener_id") != pl.col("listener_id").shift()) | \
        (pl.col("track_id") != pl.col("track_id").shift())
    return int(keys.select(new_pair.fill_null(True).sum()).item() or 0)


def unify_stats(raw, out) -> dict:
    """Compared with the raw plays, not with the output's own shape: a join that multiplies rows, a
    group-by on the wrong keys, or a lost context lookup shows here."""
    return {
        "rows_minus_raw_pairs": out.height - distinct_pairs(raw),
        "duplicate_pairs": out.height - distinct_pairs(out),
        "plays_lost": int((raw.lazy().select(pl.col("play_count").sum()).collect().item() or 0)
                          - (out["play_count"].sum() or 0)),
        "null_required_fields": int(out.select(pl.sum_horizontal(pl.col(c).is_null() for c in REQUIRED).sum()).item()
                                    or 0),
        # Unknown listeners have no marketplace yet (trust removes them next); every play has a genre.
        "missing_context": int(out["genre"].null_count()),
    }


def build_unify(program: Program, partitions):
    asset_key = key(program, "unified_candidates")

    @asset(
        key=asset_key, group_name=program.slug, owners=[OWNER], kinds={"polars"},
        partitions_def=partitions, ins={"raw": AssetIn(key(program, "raw_streams"))}, deps=reads("unify"),
        description="The unified candidate model: raw plays deduplicated by listener+track, with "
                    "marketplace, time zone and genre context and event metadata.",
        check_specs=[AssetCheckSpec("unique_and_complete", asset=asset_key, blocking=True, partitions_def=partitions,
                                    description="One row per distinct listener+track of the raw plays (none "
                                                "lost, none doubled by a join), plays conserved, required "
                                                "fields and context present.")],
    )
    def unified_candidates(context: AssetExecutionContext, warehouse: Warehouse, raw: pl.LazyFrame):
        watch = Stopwatch()
        with watch.stage("context"), warehouse.session():
            listeners = q.listener_context(warehouse, ["listener_id", "marketplace", "time_zone", "voice_enabled"])
            tracks = q.track_context(warehouse, ["track_id", "track_name"])
        with watch.stage("unify"):
            out = unify(raw, listeners, tracks, program.program_id, batch_date(context),
                        program.connector.connector_id)
        unknown = int(out["marketplace"].is_null().sum())
        raw_rows = raw.select(pl.len()).collect().item()  # from the Parquet footer
        check = started(lambda: run_stats_suite(asset_key, "unique_and_complete", unify_stats(raw, out),
                                                zero(*UNIFY_STATS)))
        yield Output(out, metadata=frame_metadata(out, watch.total, duplicates_merged=raw_rows - out.height,
                                                  unknown_listeners=unknown, stage_seconds=watch.stages))
        yield check.result()

    return unified_candidates
