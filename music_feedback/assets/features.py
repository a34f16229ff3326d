"""listener_features and track_features: hydrated from the warehouse for the day's filtered candidates."""

import polars as pl
from dagster import AssetExecutionContext, AssetIn, Output, asset

from music_feedback.assets.common import OWNER, Stopwatch, batch_date, frame_metadata, key
from music_feedback.assets.warehouse_tables import reads
from music_feedback.programs.model import Program
from music_feedback.scoring import features as f
from music_feedback.warehouse.port import Warehouse


def build_features(program: Program, partitions):
    ins = {"candidates": AssetIn(key(program, "filtered_candidates"))}

    @asset(key=key(program, "listener_features"), group_name=program.slug, owners=[OWNER],
           kinds={"sql", "polars"}, partitions_def=partitions, ins=ins, deps=reads("features"),
           description="Listener features for the day's candidates: " + ", ".join(f.LISTENER_FEATURES) + ".")
    def listener_features(context: AssetExecutionContext, warehouse: Warehouse, candidates: pl.DataFrame):
        watch = Stopwatch()
        out = f.listener_features(warehouse, program.program_id, batch_date(context), candidates["listener_id"])
        return Output(out, metadata=frame_metadata(out, watch.total))

    @asset(key=key(program, "track_features"), group_name=program.slug, owners=[OWNER],
           kinds={"sql", "polars"}, partitions_def=partitions, ins=ins, deps=reads("features"),
           description="Track features for the day's candidates: " + ", ".join(f.TRACK_FEATURES) + ".")
    def track_features(context: AssetExecutionContext, warehouse: Warehouse, candidates: pl.DataFrame):
        watch = Stopwatch()
        out = f.track_features(warehouse, program.program_id, batch_date(context), candidates["track_id"])
        return Output(out, metadata=frame_metadata(out, watch.total))

    return [listener_features, track_features]
