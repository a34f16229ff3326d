"""One contract for every model registry adapter (lake folder, S3 on moto's server mode), and the
champion/challenger decision."""
from __future__ import annotations

import uuid
from datetime import date

import boto3
import numpy as np
import pytest

from music_feedback.scoring.artifacts import ModelArtifactError
from music_feedback.scoring.evaluation import calibration_error, decide
from music_feedback.scoring.registry.local import LocalModelRegistry
from music_feedback.scoring.registry.port import NoChampionError
from music_feedback.scoring.registry.s3 import S3ModelRegistry
from music_feedback.scoring.retrain import retrain
from music_feedback.scoring.training import train_model

pytestmark = pytest.mark.integration

W1, W2 = date(2026, 11, 8), date(2026, 11, 15)


@pytest.fixture(params=["local", "s3"])
def registry(request, tmp_path):
    if request.param == "local":
        return LocalModelRegistry(root=str(tmp_path / "registry"))
    url = request.getfixturevalue("moto_url")
    bucket = f"models-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", region_name="us-east-1", endpoint_url=url).create_bucket(Bucket=bucket)
    return S3ModelRegistry(bucket=bucket, prefix="registry", endpoint_url=url)


def test_register_and_load_round_trip(registry, trained, outcomes):
    model = trained["affinity"]
    entry = registry.register(model, (date(2026, 9, 1), W1), {"source": "test"}, {"challenger": {"auc": 0.7}})
    assert registry.entry(model.model_id, model.version) == entry
    assert entry["training_window"] == {"start": "2026-09-01", "end": "2026-11-08"}
    loaded = registry.load(model.model_id, model.version)
    assert np.array_equal(loaded.predict(outcomes.head(50)), model.predict(outcomes.head(50)))


def test_champion_is_the_one_effective_on_the_day(registry, trained, outcomes):
    a = trained["propensity"]
    b = train_model(a_spec(a), outcomes.head(2500))
    for m, end in ((a, W1), (b, W2)):
        registry.register(m, (date(2026, 9, 1), end), {}, {})
        registry.promote(m.model_id, m.version, end, "test")
    with pytest.raises(NoChampionError, match=r"model feedback-propensity-v3: no champion .* for 2026-11-07"):
        registry.champion_on(a.model_id, date(2026, 11, 7))
    assert registry.champion_version(a.model_id, W1) == a.version
    assert registry.champion_version(a.model_id, date(2026, 11, 14)) == a.version
    assert registry.champion_version(a.model_id, W2) == b.version
    assert registry.champion_on(a.model_id, date(2026, 12, 1)).version == b.version


def test_a_model_cannot_be_champion_before_its_window_ends(registry, trained):
    m = trained["propensity"]
    registry.register(m, (date(2026, 9, 1), W2), {}, {})
    with pytest.raises(ValueError, match="cannot be champion from 2026-11-08"):
        registry.promote(m.model_id, m.version, W1, "too early")


def test_unregistered_version_cannot_be_promoted(registry):
    with pytest.raises(ValueError, match="not registered"):
        registry.promote("music-affinity-v2", "music-affinity-v2@nope", W1, "x")


def test_missing_artifact_names_the_model(registry):
    with pytest.raises(ModelArtifactError, match="model music-affinity-v2: artifact .* missing"):
        registry.load("music-affinity-v2", "music-affinity-v2@0123456789")


def a_spec(model):
    from music_feedback.programs.loader import load_programs
    return next(p for p in load_programs() if p.program_id == "music-feedback").model(model.role)


# ---------------------------------------------------------------- champion / challenger

def test_first_challenger_beating_the_baseline_is_promoted(registry, program, outcomes):
    d = retrain(program.model("affinity"), outcomes, registry, W1, 0.005, {"source": "test"})
    ev = d["evaluation"]
    assert d["promoted"] and d["champion_before"] is None and "first champion" in d["reason"]
    assert ev["challenger"]["auc"] > ev["popularity_baseline"]["auc"]
    assert set(ev["challenger"]) == {"auc", "log_loss", "calibration_error"}
    assert registry.champion_version("music-affinity-v2", W1) == d["challenger_version"]
    entry = registry.entry("music-affinity-v2", d["challenger_version"])
    assert entry["lineage"] == {"source": "test"} and entry["evaluation"] == ev


def test_same_rows_keep_the_champion(registry, program, outcomes):
    first = retrain(program.model("propensity"), outcomes, registry, W1, 0.005, {})
    again = retrain(program.model("propensity"), outcomes, registry, W2, 0.005, {})
    assert not again["promoted"] and again["champion_after"] == first["challenger_version"]
    assert "same rows" in again["reason"]


def test_challenger_below_the_margin_is_not_promoted(registry, program, outcomes):
    first = retrain(program.model("propensity"), outcomes.head(2400), registry, W1, 0.005, {})
    second = retrain(program.model("propensity"), outcomes, registry, W2, 0.5, {})
    assert not second["promoted"] and "below the promotion margin 0.5" in second["reason"]
    assert second["evaluation"]["champion"] is not None
    assert registry.champion_version("feedback-propensity-v3", W2) == first["challenger_version"]


@pytest.mark.unit
def test_decide_rules():
    good, champ, base = {"auc": 0.75}, {"auc": 0.74}, {"auc": 0.6}
    assert decide(good, champ, base, 0.005) == (True, decide(good, champ, base, 0.005)[1])
    assert not decide(good, champ, base, 0.02)[0]
    assert not decide({"auc": 0.59}, None, base, 0.0)[0]
    assert "popularity baseline" in decide({"auc": 0.59}, None, base, 0.0)[1]


@pytest.mark.unit
def test_calibration_error():
    y = np.array([0, 0, 1, 1])
    assert calibration_error(y, np.array([0.5, 0.5, 0.5, 0.5])) == pytest.approx(0.0)
    assert calibration_error(y, np.array([0.0, 0.0, 1.0, 1.0])) == pytest.approx(0.0)
    assert calibration_error(y, np.array([1.0, 1.0, 0.0, 0.0])) == pytest.approx(1.0)
