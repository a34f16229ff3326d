"""Tests for scoring: the combined score, model training on generated outcomes, batched scoring, and the
determinism of the warehouse generator the models learn from."""
from __future__ import annotations

import re
from datetime import date

import duckdb
import numpy as np
import polars as pl
import pytest
from threadpoolctl import threadpool_limits

from music_feedback.programs.model import ScoringModel
from music_feedback.scoring.combine import combined_score, score_distribution
from music_feedback.scoring.scorer import InProcessScorer, Scorer
from music_feedback.scoring.training import MIN_ROWS, train_model
from music_feedback.warehouse import queries as q
from music_feedback.warehouse.duckdb_warehouse import DuckDBWarehouse
from music_feedback.warehouse.generator import WarehouseSpec, generate
from music_feedback.warehouse.schema import TABLES

pytestmark = pytest.mark.unit

PROGRAM_ID = "music-feedback"
SPEC = WarehouseSpec(listeners=3000, tracks=300, plays_per_day=6000, outcomes=4000,
                     end_date=date(2026, 11, 23))
PROPENSITY = ScoringModel.model_validate({
    "modelId": "feedback-propensity-v3", "endpoint": "sagemaker://feedback-propensity-v3",
    "features": ["engagement_score", "feedback_history", "music_taste_profile"]})
AFFINITY = ScoringModel.model_validate({
    "modelId": "music-affinity-v2", "endpoint": "sagemaker://music-affinity-v2",
    "features": ["genre", "artist_popularity", "listening_frequency"]})


# ---------------------------------------------------------------- combined score

def combine(p: list[float], a: list[float], w: float) -> np.ndarray:
    frame = pl.DataFrame({"p": p, "a": a}, schema={"p": pl.Float64, "a": pl.Float64})
    return frame.select(combined_score(pl.col("p"), pl.col("a"), w).alias("s"))["s"].to_numpy()


GRID = np.linspace(0.0, 1.0, 11)
P_GRID, A_GRID = [float(x) for x in np.repeat(GRID, 11)], [float(x) for x in np.tile(GRID, 11)]


@pytest.mark.parametrize("w", [0.0, 0.25, 0.5, 0.8, 1.0])
def test_combined_score_bounds(w):
    s = combine(P_GRID, A_GRID, w)
    assert np.all((s >= 0.0) & (s <= 1.0))
    assert combine([1.0], [1.0], w)[0] == pytest.approx(1.0)


def test_combined_score_weight_one_is_propensity_zero_is_affinity():
    assert np.allclose(combine(P_GRID, A_GRID, 1.0), P_GRID)
    assert np.allclose(combine(P_GRID, A_GRID, 0.0), A_GRID)


def test_combined_score_is_weighted_geometric_mean():
    assert combine([0.64], [0.25], 0.5)[0] == pytest.approx(0.4)
    assert combine([0.9], [0.2], 0.75)[0] == pytest.approx(0.9 ** 0.75 * 0.2 ** 0.25)
    # either model near zero pulls the score down, whatever the other says
    assert combine([0.0], [1.0], 0.5)[0] == 0.0
    assert combine([1.0], [0.0], 0.5)[0] == 0.0


def test_score_distribution_bands():
    scores = pl.Series([0.0, 0.1, 0.3999, 0.4, 0.55, 0.6999, 0.7, 0.95, 1.0, 0.2])
    assert score_distribution(scores) == {"high": 0.3, "medium": 0.3, "low": 0.4}


def test_score_distribution_shares():
    dist = score_distribution(pl.Series([0.1, 0.5, 0.9]))
    assert dist == {"high": 0.3333, "medium": 0.3333, "low": 0.3333}
    assert score_distribution(pl.Series([0.8] * 4)) == {"high": 1.0, "medium": 0.0, "low": 0.0}
    assert score_distribution(pl.Series([], dtype=pl.Float64)) == {"high": 0.0, "medium": 0.0, "low": 0.0}


# ---------------------------------------------------------------- training

@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models: OpenMP threads only cost time here, and more so on a busy machine."""
    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="module")
def warehouse_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("wh") / "w.duckdb"
    generate(path, SPEC, progress=False)
    return path


@pytest.fixture(scope="module")
def outcomes(warehouse_path) -> pl.DataFrame:
    return q.training_outcomes(DuckDBWarehouse(path=str(warehouse_path)), PROGRAM_ID)


@pytest.fixture(scope="module")
def models(outcomes):
    return {"propensity": train_model(PROPENSITY, outcomes), "affinity": train_model(AFFINITY, outcomes)}


def test_outcomes_fixture_shape(outcomes):
    assert outcomes.height == SPEC.outcomes
    assert set(outcomes.columns) == set(TABLES["feedback_outcomes"])


@pytest.mark.parametrize("role", ["propensity", "affinity"])
def test_models_beat_chance_on_holdout(models, role):
    m = models[role]
    assert m.role == role
    assert m.metrics["holdout_auc"] > 0.6
    assert 0.0 < m.metrics["base_rate"] < 1.0
    assert m.metrics["holdout_log_loss"] > 0.0


def test_training_rows_per_role(models, outcomes):
    assert models["propensity"].training_rows == outcomes.height
    assert models["affinity"].training_rows == outcomes["responded"].sum()  # only answered requests


def test_version_stable_for_same_data(models, outcomes):
    for spec, role in ((PROPENSITY, "propensity"), (AFFINITY, "affinity")):
        again = train_model(spec, outcomes.sample(fraction=1.0, shuffle=True, seed=3))
        assert again.version == models[role].version
        assert again.metrics == models[role].metrics
    assert re.fullmatch(r"feedback-propensity-v3@[0-9a-f]{10}", models["propensity"].version)
    assert models["propensity"].version != models["affinity"].version


def test_version_changes_with_data(models, outcomes):
    fewer = outcomes.sort("requested_at").head(outcomes.height - 50)
    assert train_model(PROPENSITY, fewer).version != models["propensity"].version
    assert train_model(AFFINITY, fewer).version != models["affinity"].version
    flipped = outcomes.with_columns(  # same rows, ten labels changed
        pl.when(pl.int_range(pl.len()) < 10).then(~pl.col("responded")).otherwise(pl.col("responded"))
        .alias("responded"))
    assert train_model(PROPENSITY, flipped).version != models["propensity"].version


@pytest.mark.parametrize("role", ["propensity", "affinity"])
def test_predict_returns_probabilities(models, outcomes, role):
    proba = models[role].predict(outcomes)
    assert proba.shape == (outcomes.height,)
    assert np.all((proba >= 0.0) & (proba <= 1.0))
    assert proba.std() > 0.0


def test_predict_handles_nulls_and_unseen_genre(models, outcomes):
    frame = outcomes.head(3).with_columns(pl.lit(None, dtype=pl.Float64).alias("artist_popularity"),
                                          pl.lit("polka").alias("genre"))
    proba = models["affinity"].predict(frame)
    assert proba.shape == (3,) and np.all((proba >= 0) & (proba <= 1))


@pytest.mark.parametrize("spec", [PROPENSITY, AFFINITY], ids=lambda s: s.role)
def test_too_few_rows_names_model(spec, outcomes):
    with pytest.raises(ValueError, match=rf"model {spec.model_id}:.*need {MIN_ROWS}\+"):
        train_model(spec, outcomes.head(100))


def test_single_outcome_names_model(outcomes):
    nobody_answered = outcomes.with_columns(pl.lit(False).alias("responded"))
    with pytest.raises(ValueError, match="model feedback-propensity-v3"):
        train_model(PROPENSITY, nobody_answered)
    with pytest.raises(ValueError, match="model music-affinity-v2"):
        train_model(AFFINITY, nobody_answered)


# ---------------------------------------------------------------- batched scoring

class RecordingScorer(Scorer):
    """The port's batching, as an endpoint adapter uses it; records the size of every batch sent."""

    def predict_batch(self, model, batch):
        CALLS.append(batch.height)
        return InProcessScorer().predict_batch(model, batch)


CALLS: list[int] = []


@pytest.fixture
def calls():
    CALLS.clear()
    yield CALLS
    CALLS.clear()


@pytest.mark.parametrize("batch_size", [1, 2, 3, 7, 100, 299, 300, 5000])
def test_batched_predict_equals_one_call(models, outcomes, batch_size):
    """A candidate's score must not depend on the batch it is sent in (e.g. a last batch of 1-3 rows)."""
    frame = outcomes.head(300)
    for model in models.values():
        batched = RecordingScorer().predict(model, frame, batch_size)
        np.testing.assert_allclose(batched, model.predict(frame), rtol=0, atol=1e-12)


@pytest.mark.parametrize("role", ["propensity", "affinity"])
def test_encoder_transform_does_not_depend_on_frame_size(models, outcomes, role):
    """Encoding a row alone gives the same features as encoding it within a larger frame."""
    encoder = models[role].encoder
    frame = outcomes.head(40)
    whole = encoder.transform(frame)
    one_by_one = np.vstack([encoder.transform(frame.slice(i, 1)) for i in range(frame.height)])
    assert np.array_equal(whole, one_by_one)


@pytest.mark.parametrize("batch_size, sizes", [(400, [400, 400, 199]), (999, [999]), (2000, [999]),
                                               (333, [333, 333, 333])])
def test_batch_count(models, outcomes, calls, batch_size, sizes):
    out = RecordingScorer().predict(models["propensity"], outcomes.head(999), batch_size)
    assert calls == sizes
    assert out.shape == (999,)


class RecordingInProcess(InProcessScorer):
    def predict_batch(self, model, batch):
        CALLS.append(batch.height)
        return super().predict_batch(model, batch)


def test_in_process_scores_the_whole_frame_in_one_call(models, outcomes, calls):
    """No endpoint to spare: one call, whatever the batch size, with the scores the batches give."""
    frame = outcomes.head(999)
    for model in models.values():
        out = RecordingInProcess().predict(model, frame, 100)
        np.testing.assert_array_equal(out, RecordingScorer().predict(model, frame, 100))
    assert calls == [999, *[100] * 9, 99] * 2
    assert RecordingInProcess().predict(models["propensity"], frame.clear(), 100).shape == (0,)


def test_empty_frame_makes_no_call(models, outcomes, calls):
    out = RecordingScorer().predict(models["propensity"], outcomes.clear(), 100)
    assert calls == []
    assert out.shape == (0,)


# ---------------------------------------------------------------- generator determinism

CHECKSUM = ("SELECT count(*), sum(hash(listener_id, track_id, play_count, completion_rate, engagement_score, "
            "played_at, track_release_date)) FROM track_plays")


def fingerprint(path) -> tuple:
    with duckdb.connect(str(path), read_only=True) as con:
        plays = con.execute(CHECKSUM).fetchone()
        outcomes = con.execute("SELECT sum(hash(listener_id, track_id, requested_at, responded, liked)) "
                               "FROM feedback_outcomes").fetchone()
    return plays, outcomes


def test_generator_is_deterministic(warehouse_path, tmp_path):
    counts = generate(tmp_path / "again.duckdb", SPEC, progress=False)
    with duckdb.connect(str(warehouse_path), read_only=True) as con:
        first = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
    assert counts == first
    assert fingerprint(tmp_path / "again.duckdb") == fingerprint(warehouse_path)
    assert DuckDBWarehouse(path=str(tmp_path / "again.duckdb")).meta()["seed"] == str(SPEC.seed)


def test_generator_differs_for_another_seed(warehouse_path, tmp_path):
    other = WarehouseSpec(**{**SPEC.__dict__, "seed": SPEC.seed + 1})
    generate(tmp_path / "other.duckdb", other, progress=False)
    plays, outcomes = fingerprint(tmp_path / "other.duckdb")
    base_plays, base_outcomes = fingerprint(warehouse_path)
    assert plays[1] != base_plays[1]
    assert outcomes != base_outcomes
    assert DuckDBWarehouse(path=str(tmp_path / "other.duckdb")).meta()["seed"] == str(SPEC.seed + 1)


def test_generator_counts(warehouse_path):
    with duckdb.connect(str(warehouse_path), read_only=True) as con:
        counts = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
        days = con.execute("SELECT count(DISTINCT CAST(played_at AS DATE)) FROM track_plays").fetchone()[0]
    assert counts["listeners"] == SPEC.listeners
    assert counts["tracks"] == SPEC.tracks
    assert counts["listener_genre_affinity"] == 3 * SPEC.listeners
    assert counts["feedback_outcomes"] == SPEC.outcomes
    assert days == SPEC.days
