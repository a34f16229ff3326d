"""listener_features and track_features: hydrated from the warehouse for the day's filtered candidates.

One step makes both (each may be materialized alone): they read the same candidates, and on two threads
the track features' queries run while the listener features' are computed, instead of a second step
loading the candidates and opening the warehouse again (~0.1 s of a batch)."""

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import polars as pl
from dagster import AssetExecutionContext, AssetIn, AssetOut, Output, multi_asset

from music_feedback.defs.batch.checks import FRESHNESS, LISTENER_CHECKS, TRACK_CHECKS
from music_feedback.defs.common import OWNER, Stopwatch, frame_metadata, key
from music_feedback.defs.partitions import batch_date
from music_feedback.defs.warehouse_tables.assets import reads
from music_feedback.programs.model import Program
from music_feedback.scoring import features as f
from music_feedback.warehouse.port import Warehouse


@dataclass(frozen=True)
class _Features:
    kind: str  # listener or track
    checks: list  # the expectations of its standalone check (assets/checks.py)
    build: Callable  # scoring.features.listener_features or track_features
    column: str  # the candidates' id column it reads
    features: tuple[str, ...]

    @property
    def name(self) -> str:  # the asset's name and the step's output
        return f"{self.kind}_features"


KINDS = (_Features("listener", LISTENER_CHECKS, f.listener_features, "listener_id", f.LISTENER_FEATURES),
         _Features("track", TRACK_CHECKS, f.track_features, "track_id", f.TRACK_FEATURES))


def build_features(program: Program, partitions):
    asset_keys = {k.kind: key(program, k.name) for k in KINDS}

    @multi_asset(
        name=f"{program.slug}__features", deps=reads("features"), partitions_def=partitions, can_subset=True,
        ins={"candidates": AssetIn(key(program, "filtered_candidates"))},
        outs={k.name: AssetOut(
            key=asset_keys[k.kind], group_name=program.slug, owners=[OWNER], kinds={"sql", "polars"},
            freshness_policy=FRESHNESS, is_required=False,
            description=f"{k.kind.capitalize()} features for the day's candidates: "
                        + ", ".join(k.features) + ".") for k in KINDS},
    )
    def features(context: AssetExecutionContext, warehouse: Warehouse, candidates: pl.DataFrame):
        day = batch_date(context)

        def hydrate(kind: _Features) -> tuple[pl.DataFrame, float]:
            watch = Stopwatch()
            with warehouse.session():  # per thread: each has its own connection
                return kind.build(warehouse, program.program_id, day, candidates[kind.column]), watch.total

        selected = [k for k in KINDS if k.name in context.selected_output_names]
        with ThreadPoolExecutor(len(selected)) as pool:
            frames = list(zip(selected, pool.map(hydrate, selected)))
        for kind, (out, seconds) in frames:
            yield Output(out, kind.name, metadata=frame_metadata(out, seconds))

    return [features]
