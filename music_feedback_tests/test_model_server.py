"""The SageMaker-contract model server: /ping, /invocations with CSV and JSON, bad artifacts and bodies,
and the same scores as the in-process scorer."""
from __future__ import annotations

import json

import httpx
import numpy as np
import pytest

from music_feedback.cli import main
from music_feedback.scoring.artifacts import ModelArtifactError, load_model, save_model
from music_feedback.scoring.model import model_columns
from music_feedback.scoring.scorer import InProcessScorer
from music_feedback.scoring.wire import BadRequest, encode_csv
from music_feedback.serving.model_server import create_app
from music_feedback.serving.threaded import serving

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def servers(model_dirs):
    from contextlib import ExitStack
    with ExitStack() as stack:
        yield {role: stack.enter_context(serving(create_app(d))) for role, d in model_dirs.items()}


@pytest.mark.parametrize("role", ["propensity", "affinity"])
def test_ping_names_the_loaded_model(servers, trained, role):
    answer = httpx.get(f"{servers[role]}/ping")
    assert answer.status_code == 200
    assert answer.json()["model_version"] == trained[role].version


@pytest.mark.parametrize("role", ["propensity", "affinity"])
def test_csv_and_json_bodies_score_exactly_as_in_process(servers, trained, outcomes, role):
    model, frame = trained[role], outcomes.head(700)
    expected = InProcessScorer().predict(model, frame, 2000)
    csv = httpx.post(f"{servers[role]}/invocations", content=encode_csv(frame, model),
                     headers={"content-type": "text/csv"})
    rows = frame.select(model_columns(model.features)).to_dicts()
    js = httpx.post(f"{servers[role]}/invocations", json={"instances": rows})
    for answer in (csv, js):
        assert answer.status_code == 200, answer.text
        assert answer.json()["model_version"] == model.version
        assert np.array_equal(np.asarray(answer.json()["predictions"]), expected)  # bit for bit


def test_missing_feature_column_is_400_naming_model_and_column(servers, trained, outcomes):
    model = trained["affinity"]
    body = outcomes.head(3).select("genre", "listening_frequency").write_csv().encode()
    answer = httpx.post(f"{servers['affinity']}/invocations", content=body, headers={"content-type": "text/csv"})
    assert answer.status_code == 400
    assert model.model_id in answer.json()["error"] and "artist_popularity" in answer.json()["error"]


@pytest.mark.parametrize("body, ctype, status", [
    (b"\x00\xff garbage", "text/csv", 400), (b"{not json", "application/json", 400),
    (b'{"instances": 3}', "application/json", 400), (b"a,b", "application/x-npy", 415),
    (b'{"instances": [{"genre": "pop", "artist_popularity": "high", "listening_frequency": 1}]}',
     "application/json", 400)])
def test_bad_bodies_are_4xx_naming_the_model(servers, trained, body, ctype, status):
    answer = httpx.post(f"{servers['affinity']}/invocations", content=body, headers={"content-type": ctype})
    assert answer.status_code == status
    assert trained["affinity"].model_id in answer.json()["error"]


def test_empty_body_scores_nothing(servers):
    answer = httpx.post(f"{servers['propensity']}/invocations", content=b"", headers={"content-type": "text/csv"})
    assert answer.status_code == 200 and answer.json()["predictions"] == []


@pytest.mark.unit
def test_in_process_missing_column_names_the_model(trained, outcomes):
    with pytest.raises(BadRequest, match=r"model feedback-propensity-v3: .*engagement_score"):
        InProcessScorer().predict(trained["propensity"], outcomes.drop("engagement_score"), 100)


@pytest.mark.unit
def test_missing_artifact_names_the_model(trained, tmp_path):
    d = save_model(trained["propensity"], tmp_path / "m")
    (d / "model.joblib").unlink()
    with pytest.raises(ModelArtifactError, match=r"model m: artifact model.joblib is missing"):
        create_app(d)


@pytest.mark.unit
def test_corrupt_artifact_names_the_model(trained, tmp_path):
    d = save_model(trained["affinity"], tmp_path / "m")
    blob = (d / "model.joblib").read_bytes()
    (d / "model.joblib").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ModelArtifactError, match=r"model music-affinity-v2: artifact .* is corrupt"):
        load_model(d, "music-affinity-v2")


@pytest.mark.unit
def test_swapped_artifact_is_refused(trained, tmp_path):
    d = save_model(trained["affinity"], tmp_path / "m")
    manifest = json.loads((d / "model.json").read_text())
    (d / "model.json").write_text(json.dumps({**manifest, "version": "music-affinity-v2@0000000000"}))
    with pytest.raises(ModelArtifactError, match="does not match"):
        load_model(d)


@pytest.mark.unit
def test_cli_serve_refuses_a_missing_model_dir(tmp_path, capsys):
    assert main(["model", "serve", "--model-dir", str(tmp_path / "nowhere"), "--port", "0"]) == 2
    assert "artifact model.json is missing" in capsys.readouterr().err
