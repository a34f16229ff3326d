"""Trained models and their SageMaker-layout artifact directories, shared by the serving tests."""
from __future__ import annotations

import pytest

from music_feedback.programs.loader import load_programs
from music_feedback.scoring.artifacts import save_model
from music_feedback.scoring.training import train_model
from music_feedback.warehouse import queries as q
from music_feedback.warehouse.duckdb_warehouse import DuckDBWarehouse


@pytest.fixture(scope="session")
def program():
    return next(p for p in load_programs() if p.program_id == "music-feedback")


@pytest.fixture(scope="session")
def outcomes(small_warehouse):
    return q.training_outcomes(DuckDBWarehouse(path=str(small_warehouse)), "music-feedback")


@pytest.fixture(scope="session")
def trained(program, outcomes):
    from threadpoolctl import threadpool_limits
    with threadpool_limits(limits=1):
        return {role: train_model(program.model(role), outcomes) for role in ("propensity", "affinity")}


@pytest.fixture(scope="session")
def model_dirs(trained, tmp_path_factory):
    root = tmp_path_factory.mktemp("opt_ml")
    return {role: save_model(m, root / role / "model") for role, m in trained.items()}


@pytest.fixture(scope="session")
def endpoints(program, model_dirs):
    """endpoint name -> model directory, as the program configures them."""
    return {program.model(role).endpoint_name: d for role, d in model_dirs.items()}
