"""A tiny generated warehouse and an isolated data home for the tests that run the graph.

Isolation: the session starts (pytest_configure, before any test module is imported) on a data home of its
own in a fresh temporary folder: MUSIC_FEEDBACK_HOME and DAGSTER_HOME point there, and every other
MUSIC_FEEDBACK_* setting of the developer's shell is unset (the warehouse, the programs folder, key and
password files, the bench's and the simulator's homes, and the stores and services they name), so no test
reads ./data, which the Makefile exports and `make run` fills. A test that needs a setting sets its own
(`data_home`, monkeypatch). When the session ends it puts the environment back and deletes the folder.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from datetime import date
from pathlib import Path

import pytest

from music_feedback.warehouse.generator import WarehouseSpec, generate

pytest_plugins = ["music_feedback_tests.servers.fixtures", "music_feedback_tests.model_fixtures",
                  "music_feedback_tests.aws_fixtures"]

BATCH_DAY = date(2026, 11, 23)
SMALL = WarehouseSpec(listeners=8_000, tracks=400, plays_per_day=16_000, outcomes=3_000, days=2, end_date=BATCH_DAY)

# What the session keeps of the developer's MUSIC_FEEDBACK_* settings: where tools are installed, not data.
KEEP_VARS = frozenset({"MUSIC_FEEDBACK_DYNAMODB_LOCAL_DIR"})
_ISOLATION = pytest.StashKey[tuple[Path, dict[str, str]]]()


def _settings() -> list[str]:
    return [k for k in os.environ if k.startswith("MUSIC_FEEDBACK_") or k == "DAGSTER_HOME"]


def pytest_configure(config):
    root = Path(tempfile.mkdtemp(prefix="music-feedback-tests-"))
    saved = {k: os.environ[k] for k in _settings()}
    for k in saved.keys() - KEEP_VARS:
        del os.environ[k]
    home = root / "home"
    (home / "dagster_home").mkdir(parents=True)
    os.environ["MUSIC_FEEDBACK_HOME"] = str(home)
    os.environ["DAGSTER_HOME"] = str(home / "dagster_home")
    config.stash[_ISOLATION] = (root, saved)


def pytest_unconfigure(config):
    if _ISOLATION not in config.stash:
        return
    root, saved = config.stash[_ISOLATION]
    for k in _settings():
        del os.environ[k]
    os.environ.update(saved)
    shutil.rmtree(root, ignore_errors=True)


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
