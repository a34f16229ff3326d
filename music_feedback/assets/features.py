"""listener_features and track_features: hydrated from the warehouse for the day's filtered candidates."""

import polars as pl
from dagster import AssetExecutionContext, AssetIn, Output, asset

from music_feedback.assets.common import OWNER, Stopwatch, batch_date, frame_metadata, key
from music_feedback.assets.feature_checks import FRESHNESS, LISTENER_CHECKS, TRACK_CHECKS, check_spec
from music_feedback.assets.warehouse_tables import reads
from music_feedback.programs.model import Program
from music_feedback.quality.checks import run_suite, started
from music_feedback.scoring import features as f
from music_feedback.warehouse.port import Warehouse


def build_features(program: Program, partitions):
    ins = {"candidates": AssetIn(key(program, "filtered_candidates"))}

    lkey, tkey = key(program, "listener_features"), key(program, "track_features")

    @asset(key=lkey, group_name=program.slug, owners=[OWNER], check_specs=[check_spec(lkey, "listener", partitions)],
           kinds={"sql", "polars"}, partitions_def=partitions, ins=ins, freshness_policy=FRESHNESS,
           deps=reads("features"),
           description="Listener features for the day's candidates: " + ", ".join(f.LISTENER_FEATURES) + ".")
    def listener_features(context: AssetExecutionContext, warehouse: Warehouse, candidates: pl.DataFrame):
        watch = Stopwatch()
        with warehouse.session():
            out = f.listener_features(warehouse, program.program_id, batch_date(context), candidates["listener_id"])
        check = started(lambda: run_suite(lkey, "listener_features_valid", out, LISTENER_CHECKS))
        yield Output(out, metadata=frame_metadata(out, watch.total))
        yield check.result()

    @asset(key=tkey, group_name=program.slug, owners=[OWNER], check_specs=[check_spec(tkey, "track", partitions)],
           kinds={"sql", "polars"}, partitions_def=partitions, ins=ins, freshness_policy=FRESHNESS,
           deps=reads("features"),
           description="Track features for the day's candidates: " + ", ".join(f.TRACK_FEATURES) + ".")
    def track_features(context: AssetExecutionContext, warehouse: Warehouse, candidates: pl.DataFrame):
        watch = Stopwatch()
        with warehouse.session():
            out = f.track_features(warehouse, program.program_id, batch_date(context), candidates["track_id"])
        check = started(lambda: run_suite(tkey, "track_features_valid", out, TRACK_CHECKS))
        yield Output(out, metadata=frame_metadata(out, watch.total))
        yield check.result()

    return [listener_features, track_features]
