"""A tiny generated warehouse and an isolated data home for the tests that run the graph."""
from __future__ import annotations

from datetime import date

import pytest

from music_feedback.warehouse.generator import WarehouseSpec, generate

pytest_plugins = ["music_feedback_tests.servers.fixtures", "music_feedback_tests.model_fixtures",
                  "music_feedback_tests.aws_fixtures"]

BATCH_DAY = date(2026, 11, 23)
SMALL = WarehouseSpec(listeners=8_000, tracks=400, plays_per_day=16_000, outcomes=3_000, days=2, end_date=BATCH_DAY)


@pytest.fixture(scope="session")
def small_warehouse(tmp_path_factory):
    path = tmp_path_factory.mktemp("warehouse") / "warehouse.duckdb"
    generate(path, SMALL, progress=False)
    return path


@pytest.fixture
def data_home(tmp_path, monkeypatch, small_warehouse):
    """MUSIC_FEEDBACK_HOME on a fresh folder, reading the shared small warehouse."""
    monkeypatch.setenv("MUSIC_FEEDBACK_HOME", str(tmp_path))
    monkeypatch.setenv("MUSIC_FEEDBACK_WAREHOUSE", str(small_warehouse))
    monkeypatch.delenv("MUSIC_FEEDBACK_ENV", raising=False)
    monkeypatch.delenv("MUSIC_FEEDBACK_PROGRAM", raising=False)
    monkeypatch.delenv("MUSIC_FEEDBACK_PROGRAMS_DIR", raising=False)
    return tmp_path
