"""`bench --limit` does the batch's work: the same rows reach the store as through Dagster."""
from __future__ import annotations

import sqlite3

import pytest
from dagster import instance_for_test

from music_feedback import runner
from music_feedback_tools.bench.limit import run_limit
from music_feedback.definitions import build_definitions
from music_feedback.programs.loader import load_programs
from music_feedback_tests.conftest import BATCH_DAY

pytestmark = pytest.mark.graph


def _rows(path) -> set:
    with sqlite3.connect(path) as conn:
        (table,) = conn.execute("SELECT 'cand_' || id FROM candidate_batches").fetchone()
        return set(conn.execute(f"SELECT listener_id, track_id, channel, round(score, 12) FROM {table}"))


def test_the_plain_process_stores_what_the_dagster_run_stores(data_home):
    program = load_programs()[0]
    with instance_for_test() as instance:
        defs = build_definitions()
        runner.ensure_models(defs, program, instance, day=BATCH_DAY)
        assert runner.run_batch(defs, program, BATCH_DAY, instance).success
    figures = run_limit(program, BATCH_DAY, str(data_home / "limit.sqlite"))
    assert set(figures["limit_stage_s"]) == {"extract", "unify", "filter", "features", "score", "store"}
    dagster_rows = _rows(data_home / "candidates.sqlite")
    assert figures["limit_stored_rows"] == len(dagster_rows) > 0
    assert _rows(data_home / "limit.sqlite") == dagster_rows
