"""`music-feedback bench --limit`: the batch's work in one plain process, to measure what Dagster, the
checks and Parquet between stages cost. The same SQL, filters and reason codes, features, the project's
trained models and the same store rows; no Dagster, no checks, nothing written between stages."""
from __future__ import annotations

import json
import time
from datetime import date

import polars as pl

from music_feedback import settings
from music_feedback.defs.batch.assets.score import feature_columns
from music_feedback.defs.batch.assets.store import channel_rows
from music_feedback.filters import FilterContext, build_chain, run_chain
from music_feedback.policy.contact import batch_window
from music_feedback.programs.model import Program
from music_feedback.resources import get_resources
from music_feedback.scoring import features as f
from music_feedback.scoring.combine import combined_score
from music_feedback.scoring.scorer import InProcessScorer
from music_feedback.store.sqlite_store import SQLiteCandidateStore
from music_feedback.transforms.unify import unify
from music_feedback.transforms.validate import EXTRACT_COLUMNS, malformed_rows_query, split_invalid
from music_feedback.warehouse import queries as q
from music_feedback.warehouse.duckdb_warehouse import DuckDBWarehouse
from music_feedback.warehouse.port import bind_batch_window


def run_limit(program: Program, day: date, store_path: str) -> dict:
    """Every stage once, in order; returns per-stage seconds and the rows stored."""
    wh, seconds, started = DuckDBWarehouse(path=str(settings.warehouse_path())), {}, time.perf_counter()
    wh.snapshot_schema()  # as a Dagster run does
    conn = program.connector

    def lap(name: str) -> None:
        seconds[name] = round(time.perf_counter() - started - sum(seconds.values()), 3)

    raw = pl.concat([wh.fetch(bind_batch_window(conn.config.query, day)).select(EXTRACT_COLUMNS),
                     wh.fetch(bind_batch_window(malformed_rows_query(conn.config.table), day)).select(EXTRACT_COLUMNS)],
                    how="vertical_relaxed")
    valid, _rejected = split_invalid(raw)
    lap("extract")
    listeners, tracks = q.listener_context(wh), q.track_context(wh)
    unified = unify(valid, listeners, tracks, program.program_id, day, conn.connector_id)
    lap("unify")
    ctx = FilterContext(program.program_id, day, listeners, tracks, q.prior_feedback_pairs(wh, program.program_id, day),
                        q.recent_request_counts(wh, program.program_id, *batch_window(day)),
                        tuple(program.marketplaces))
    kept = run_chain(build_chain(program.filter_chain), unified, ctx).kept
    lap("filter")
    lf = f.listener_features(wh, program.program_id, day, kept["listener_id"])
    tf = f.track_features(wh, program.program_id, day, kept["track_id"])
    lap("features")
    registry = get_resources()["model_registry"]
    models = {role: registry.champion_on(program.model(role).model_id, day) for role in ("propensity", "affinity")}
    frame = f.candidate_features(kept, lf, tf, day)
    scorer, size = InProcessScorer(), program.scoring.batch_size
    scored = frame.with_columns(
        pl.Series("propensity_score", scorer.predict(models["propensity"], frame, size), dtype=pl.Float64),
        pl.Series("affinity_score", scorer.predict(models["affinity"], frame, size), dtype=pl.Float64),
        pl.lit(models["propensity"].version).alias("propensity_model_version"),
        pl.lit(models["affinity"].version).alias("affinity_model_version"),
    ).with_columns(
        combined_score(pl.col("propensity_score"), pl.col("affinity_score"), program.scoring.propensity_weight)
        .alias("score"),
        pl.struct(feature_columns(program)).alias("features"))
    lap("score")
    rows = SQLiteCandidateStore(path=store_path).put_batch(program.program_id, day.isoformat(),
                                                           channel_rows(program, scored, day))
    lap("store")
    return {"limit_stage_s": seconds, "limit_stored_rows": rows, "limit_wall_s": round(time.perf_counter() - started, 3)}


def main(program: Program, day: date, store_path: str, out: str) -> None:
    with open(out, "w") as handle:
        json.dump(run_limit(program, day, store_path), handle)
