"""The daily batch's scoring through Dagster: champions by day (a backfill never uses a later model),
the score cache across runs, the SageMaker path as one setting, and failures that store nothing."""
from __future__ import annotations

import shutil
from datetime import date, datetime, timedelta, timezone

import polars as pl
import pytest
from dagster import instance_for_test
from fastapi import FastAPI

from music_feedback import runner
from music_feedback.definitions import build_definitions
from music_feedback.resources import get_resources
from music_feedback.scoring.training import train_model
from music_feedback.serving.threaded import sagemaker_stack, serving
from music_feedback_tests.conftest import BATCH_DAY

pytestmark = pytest.mark.graph

BACKFILL_DAY = BATCH_DAY - timedelta(days=1)
OLD_END, NEW_END = date(2026, 11, 15), BATCH_DAY  # champion A from 11-15, champion B from 11-23


@pytest.fixture
def champions(data_home, program, outcomes):
    """Two generations of champions in the run's registry: A (older outcomes) and B (all of them)."""
    registry = get_resources()["model_registry"]
    older = outcomes.filter(pl.col("requested_at") < pl.datetime(2026, 11, 5))
    out = {}
    for gen, rows, end in (("A", older, OLD_END), ("B", outcomes, NEW_END)):
        for role in ("propensity", "affinity"):
            m = train_model(program.model(role), rows)
            registry.register(m, (date(2026, 9, 1), end), {"source": "test"}, {})
            registry.promote(m.model_id, m.version, end, f"generation {gen}")
            out[(gen, role)] = m
    return registry, out


def run(program, day, instance):
    return runner.run_batch(build_definitions(), program, day, instance)


def scored(data_home, program, day) -> pl.DataFrame:
    return pl.read_parquet(data_home / "assets" / program.slug / "scored_candidates" / f"{day}.parquet")


def versions(frame: pl.DataFrame) -> set[str]:
    return set(frame["propensity_model_version"].unique()) | set(frame["affinity_model_version"].unique())


def test_backfilled_day_scores_with_that_days_champion_and_reruns_hit_the_cache(data_home, program, champions):
    registry, models = champions
    with instance_for_test() as instance:
        today = run(program, BATCH_DAY, instance)
        backfill = run(program, BACKFILL_DAY, instance)
        assert today.success and backfill.success, (today.failure, backfill.failure)
        assert versions(scored(data_home, program, BATCH_DAY)) == {models[("B", r)].version for r in
                                                                  ("propensity", "affinity")}
        old = scored(data_home, program, BACKFILL_DAY)
        # the backfill ran after B existed, yet scored with A: B was trained on outcomes up to 11-23
        assert versions(old) == {models[("A", r)].version for r in ("propensity", "affinity")}
        assert backfill.meta("scored_candidates", "model_versions") == [models[("A", "propensity")].version,
                                                                        models[("A", "affinity")].version]
        assert backfill.meta("scored_candidates", "score_cache_hit_rate") == 0.0

        again = run(program, BACKFILL_DAY, instance)
        assert again.success
        assert again.meta("scored_candidates", "score_cache_hit_rate") == 1.0
        assert again.meta("scored_candidates", "scored_now") == 0
        assert scored(data_home, program, BACKFILL_DAY).equals(old)  # cached scores are the scores


def test_the_endpoint_path_scores_the_same_and_failures_store_nothing(data_home, program, champions,
                                                                      monkeypatch, tmp_path):
    registry, models = champions
    with instance_for_test() as instance:
        assert run(program, BACKFILL_DAY, instance).success
        in_process = scored(data_home, program, BACKFILL_DAY)
        shutil.rmtree(data_home / "score_cache")  # so every pair goes to the endpoints

        dirs = {program.model(r).endpoint_name: registry.export(models[("A", r)].model_id,
                                                               models[("A", r)].version, tmp_path / r)
                for r in ("propensity", "affinity")}
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        monkeypatch.setenv("MUSIC_FEEDBACK_SCORER", "sagemaker")
        with sagemaker_stack(dirs) as url:
            monkeypatch.setenv("MUSIC_FEEDBACK_SAGEMAKER_URL", url)
            report = run(program, BACKFILL_DAY, instance)
        assert report.success, report.failure
        assert report.meta("scored_candidates", "score_cache_hit_rate") == 0.0
        assert scored(data_home, program, BACKFILL_DAY).equals(in_process)

        store, now = get_resources()["candidate_store"], datetime(2026, 11, 24, 3, tzinfo=timezone.utc)
        before = store.count(program.program_id, BACKFILL_DAY.isoformat(), now=now)
        assert before > 0
        with serving(FastAPI()) as down:
            pass
        monkeypatch.setenv("MUSIC_FEEDBACK_SAGEMAKER_URL", down)
        failed = run(program, BATCH_DAY, instance)
        assert not failed.success and "endpoint feedback-propensity-v3" in failed.failure
        assert "not reachable" in failed.failure

        monkeypatch.setenv("MUSIC_FEEDBACK_SCORER", "inprocess")
        b = models[("B", "affinity")]
        blob = data_home / "lake" / "model_registry" / b.model_id / "versions" / b.version / "model.joblib"
        blob.write_bytes(blob.read_bytes()[:100])
        corrupt = run(program, BATCH_DAY, instance)
        assert not corrupt.success and "model music-affinity-v2: artifact" in corrupt.failure
        assert "corrupt" in corrupt.failure
        for report in (failed, corrupt):
            assert "scored_candidates" not in report.assets and "stored_candidates" not in report.assets
        assert store.count(program.program_id, BACKFILL_DAY.isoformat(), now=now) == before  # untouched
        assert store.count(program.program_id, BATCH_DAY.isoformat(), now=now) == 0  # nothing half-written
        assert not (data_home / "assets" / program.slug / "scored_candidates" / f"{BATCH_DAY}.parquet").exists()
