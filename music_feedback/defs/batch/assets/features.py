"""listener_features and track_features: hydrated from the warehouse for the day's filtered candidates.

One step makes both (each may be materialized alone): they read the same candidates, and on two threads
the track features' queries run while the listener features' are computed, instead of a second step
loading the candidates and opening the warehouse again (~0.1 s of a batch).

Both are hydrated and written a chunk of ids at a time (settings.batch_chunk_rows), each chunk reading only
its id range of the warehouse, so the step's memory follows the chunk, not the day nor the listener table."""

from concurrent.futures import ThreadPoolExecutor
from typing import Iterator
from dataclasses import dataclass
from typing import Callable

import polars as pl
from dagster import AssetExecutionContext, AssetIn, AssetOut, Output, multi_asset

from music_feedback.defs.batch.checks import FRESHNESS, LISTENER_CHECKS, TRACK_CHECKS
from music_feedback import settings
from music_feedback.defs.common import OWNER, PREVIEW_ROWS, Stopwatch, frame_metadata, key
from music_feedback.defs.partitions import batch_date
from music_feedback.defs.warehouse_tables.assets import reads
from music_feedback.programs.model import Program
from music_feedback.scoring import features as f
from music_feedback.io.chunks import FrameChunks
from music_feedback.warehouse.port import Warehouse


@dataclass(frozen=True)
class _Features:
    kind: str  # listener or track
    checks: list  # the expectations of its standalone check (assets/checks.py)
    build: Callable  # scoring.features.listener_feature_chunks or track_feature_chunks
    column: str  # the candidates' id column it reads
    features: tuple[str, ...]

    @property
    def name(self) -> str:  # the asset's name and the step's output
        return f"{self.kind}_features"


KINDS = (_Features("listener", LISTENER_CHECKS, f.listener_feature_chunks, "listener_id", f.LISTENER_FEATURES),
         _Features("track", TRACK_CHECKS, f.track_feature_chunks, "track_id", f.TRACK_FEATURES))


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
    def features(context: AssetExecutionContext, warehouse: Warehouse, candidates: pl.LazyFrame):
        day = batch_date(context)
        chunk_rows = settings.batch_chunk_rows()
        selected = [k for k in KINDS if k.name in context.selected_output_names]
        # the day's ids only, one column at a time: 8 bytes a candidate, not the candidates' rows
        ids = {k.kind: candidates.select(k.column).collect().to_series() for k in selected}

        def hydrate(kind: _Features) -> Iterator[pl.DataFrame]:
            """The kind's chunks, its metadata added once the last is written (asset metadata, which the
            materialization takes after the IO manager has consumed the chunks)."""
            watch, rows, first = Stopwatch(), 0, None
            with warehouse.session():  # per thread: each has its own connection
                for chunk in kind.build(warehouse, program.program_id, day, ids[kind.kind], chunk_rows):
                    rows += chunk.height
                    first = chunk.head(PREVIEW_ROWS) if first is None else first
                    yield chunk
            meta = frame_metadata(first, watch.total)
            meta["dagster/row_count"] = rows
            context.add_asset_metadata(meta, asset_key=asset_keys[kind.kind])

        def prefetch(kind: _Features) -> list[pl.DataFrame]:
            return list(hydrate(kind))

        # The track features (a few thousand rows a day) are read on a thread while the listener features
        # are written chunk by chunk; the listeners' chunks are made as the IO manager writes them.
        later = [k for k in selected if k.kind == "track"]
        with ThreadPoolExecutor(1) as pool:
            ahead = {k.kind: pool.submit(prefetch, k) for k in later}
            for kind in selected:
                chunks = ahead[kind.kind].result() if kind.kind in ahead else hydrate(kind)
                if f.one_chunk(ids[kind.kind], chunk_rows):  # a frame: polars writes one ~0.1 s faster
                    yield Output(pl.concat(list(chunks)), kind.name)
                else:
                    yield Output(FrameChunks(iter(chunks)), kind.name)

    return [features]
