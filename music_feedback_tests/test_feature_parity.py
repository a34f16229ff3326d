"""Training and scoring read the same feature definitions: one list of names, one column mapping, one
typed frame, and the values logged at scoring time reproduce the scores they were scored with."""
from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl
import pytest

from music_feedback.programs import model as program_model
from music_feedback.scoring import features as f
from music_feedback.scoring.features import candidate_features, listener_features, track_features
from music_feedback.scoring.model import model_columns
from music_feedback.io.parquet_io_manager import LocalParquetIOManager
from music_feedback.scoring.outcomes import logged_features
from music_feedback.scoring.training import labelled_rows
from music_feedback.scoring.wire import prepare_frame
from music_feedback.warehouse.duckdb_warehouse import DuckDBWarehouse
from music_feedback_tests.conftest import BATCH_DAY

pytestmark = pytest.mark.unit


def test_one_list_of_feature_names():
    assert program_model.FEATURE_NAMES == f.LISTENER_FEATURES + f.TRACK_FEATURES


def test_training_and_scoring_frames_carry_the_same_typed_columns(program, outcomes, trained, small_warehouse):
    wh = DuckDBWarehouse(path=str(small_warehouse))
    pairs = outcomes.select("listener_id", "track_id").unique().sort("listener_id", "track_id").head(500)
    scoring = candidate_features(pairs, listener_features(wh, program.program_id, BATCH_DAY, pairs["listener_id"]),
                                 track_features(wh, program.program_id, BATCH_DAY, pairs["track_id"]), BATCH_DAY)
    for role, m in trained.items():
        training = labelled_rows(program.model(role), outcomes)
        cols = model_columns(program.model(role).features)
        a, b = prepare_frame(m, training, "training"), prepare_frame(m, scoring, "scoring")
        assert a.columns == b.columns == cols
        assert a.schema == b.schema
        assert np.isfinite(m.encoder.transform(b)).all()


def test_logged_features_reproduce_the_scores(tmp_path, trained, outcomes):
    """What the retrain will learn from (the logged values) is exactly what the models scored."""
    cols = sorted({c for m in trained.values() for c in model_columns(m.features)})
    frame = outcomes.head(300).with_columns(
        (pl.col("requested_at").cast(pl.Date) - pl.col("release_date")).dt.total_days().cast(pl.Float64)
        .alias("days_since_release"))
    scored = frame.select("listener_id", "track_id", *cols).with_columns(
        pl.Series("propensity_score", trained["propensity"].predict(frame)),
        pl.Series("affinity_score", trained["affinity"].predict(frame)),
        pl.struct(cols).struct.json_encode().alias("features"))
    (tmp_path / "scored").mkdir()
    scored.write_parquet(tmp_path / "scored" / "2026-11-22.parquet")
    frames = LocalParquetIOManager(base_dir=str(tmp_path))
    logged = logged_features(frames, ["scored"], date(2026, 11, 23))
    assert logged.height == 300 and set(cols) <= set(logged.columns)
    for role, m in trained.items():
        assert np.array_equal(m.predict(logged), scored[f"{role}_score"].to_numpy())
    assert logged_features(frames, ["scored"], date(2026, 11, 22)).height == 0  # a window never reads its own day
