"""unified_candidates: one row per listener+track with marketplace, genre and event metadata."""

import polars as pl
from dagster import AssetExecutionContext, AssetIn, Output, asset

from music_feedback.defs.common import OWNER, Stopwatch, frame_metadata, key
from music_feedback.defs.partitions import batch_date
from music_feedback.defs.warehouse_tables.assets import reads
from music_feedback.programs.model import Program
from music_feedback.transforms.unify import unify
from music_feedback.warehouse import queries as q
from music_feedback.warehouse.port import Warehouse


def build_unify(program: Program, partitions):
    asset_key = key(program, "unified_candidates")

    @asset(
        key=asset_key, group_name=program.slug, owners=[OWNER], kinds={"polars"},
        partitions_def=partitions, ins={"raw": AssetIn(key(program, "raw_streams"))}, deps=reads("unify"),
        description="The unified candidate model: raw plays deduplicated by listener+track, with "
                    "marketplace, time zone and genre context and event metadata.",
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
        return Output(out, metadata=frame_metadata(out, watch.total, duplicates_merged=raw_rows - out.height,
                                                   unknown_listeners=unknown, stage_seconds=watch.stages))

    return unified_candidates
