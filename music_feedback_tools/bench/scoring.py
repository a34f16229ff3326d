"""The scoring section of `make bench`: 200K candidates through both champions in-process and through
the local SageMaker front over HTTP, the score cache's hit rate on a second consecutive day, and a
weekly retrain. Runs after the batch section, on the day it stored, in the bench's own data home."""
from __future__ import annotations

import os
import shutil
import sys
import time
from datetime import timedelta

import polars as pl

from music_feedback import runner, settings
from music_feedback.defs.common import key
from music_feedback.programs.model import Program
from music_feedback.warehouse.duckdb_warehouse import DuckDBWarehouse

CANDIDATES = 200_000
TARGETS = {"scoring_inprocess_s": 5.0, "scoring_endpoint_s": 30.0}
ROLES = ("propensity", "affinity")


def _candidates(program: Program, day) -> pl.DataFrame:
    """The day's scored rows (they carry every feature), repeated or cut to exactly 200K."""
    frame = pl.read_parquet(settings.io_root().joinpath(*key(program, "scored_candidates").path, f"{day}.parquet"))
    reps = -(-CANDIDATES // max(frame.height, 1))
    return pl.concat([frame] * reps).head(CANDIDATES)


def _score_all(scorer, program: Program, models: dict, frame: pl.DataFrame) -> float:
    started = time.perf_counter()
    for role in ROLES:
        scorer.predict(models[role], frame, program.scoring.batch_size, endpoint=program.model(role).endpoint_name)
    return round(time.perf_counter() - started, 2)


def _endpoint_s(program: Program, registry, models: dict, frame: pl.DataFrame, tmp: str) -> float:
    from music_feedback.scoring.sagemaker_scorer import SageMakerScorer
    from music_feedback.serving.threaded import sagemaker_stack
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(var, "local")  # boto3 signs; the front does not check; DynamoDB Local wants [A-Za-z0-9]
    dirs = {program.model(r).endpoint_name: registry.export(models[r].model_id, models[r].version, f"{tmp}/{r}")
            for r in ROLES}
    with sagemaker_stack(dirs) as url:
        return _score_all(SageMakerScorer(endpoint_url=url), program, models, frame)


def _cache_hit_rate(program: Program, day, defs, inst) -> float | None:
    """Fresh cache; batch day D-1, then day D: the share of D's candidates already scored on D-1."""
    shutil.rmtree(settings.score_cache_path(), ignore_errors=True)
    runner.ensure_models(defs, program, inst, day=day - timedelta(days=1))
    for d in (day - timedelta(days=1), day):
        report = runner.run_batch(defs, program, d, inst)
        if not report.success:
            print(f"the batch for {d} failed: {report.failure}", file=sys.stderr)
            return None
    return report.meta("scored_candidates", "score_cache_hit_rate")


def run(program: Program, args) -> tuple[dict, bool]:
    import tempfile

    from music_feedback.definitions import build_definitions
    from music_feedback.resources import get_resources
    day = runner.latest_complete_day(DuckDBWarehouse(path=str(settings.warehouse_path())).meta())
    defs, inst = build_definitions(), runner.instance()
    registry = get_resources()["model_registry"]
    models = {r: registry.champion_on(program.model(r).model_id, day) for r in ROLES}
    frame = _candidates(program, day)
    figures = {"scoring_candidates": frame.height,
               "scoring_inprocess_s": _score_all(get_resources()["scorer"], program, models, frame)}
    with tempfile.TemporaryDirectory() as tmp:
        figures["scoring_endpoint_s"] = _endpoint_s(program, registry, models, frame, tmp)
    started = time.perf_counter()
    runner.ensure_models(defs, program, inst, force=True, day=day)
    figures["retrain_s"] = round(time.perf_counter() - started, 2)
    figures["score_cache_hit_rate"] = _cache_hit_rate(program, day, defs, inst)
    figures["scoring_targets_met"] = all(figures[k] <= v for k, v in TARGETS.items())
    for name, value in figures.items():
        print(f"{name:>22}: {value}")
    return figures, figures["score_cache_hit_rate"] is not None
