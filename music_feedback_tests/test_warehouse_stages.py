"""The batch's warehouse-side stages under a warehouse that cannot hold the day: the stage fails with
DuckDB's own message and what to change, and leaves nothing half written where the IO manager keeps it."""
from __future__ import annotations

import pytest
from dagster import instance_for_test

from music_feedback import runner
from music_feedback.definitions import build_definitions
from music_feedback.programs.loader import load_programs
from music_feedback_tests.conftest import BATCH_DAY

pytestmark = pytest.mark.graph


def test_a_warehouse_out_of_memory_fails_the_stage_naming_the_fix(data_home, monkeypatch):
    program = load_programs()[0]
    monkeypatch.setenv("MUSIC_FEEDBACK_DUCKDB_MEMORY_LIMIT", "4MB")
    with instance_for_test() as instance:
        defs = build_definitions()
        runner.ensure_models(defs, program, instance, day=BATCH_DAY)
        result = runner.run_batch(defs, program, BATCH_DAY, instance)
    assert not result.success
    error = str(result.failure)
    assert "ran out of memory for the day: Out of Memory Error" in error
    assert "MUSIC_FEEDBACK_DUCKDB_MEMORY_LIMIT" in error and "MUSIC_FEEDBACK_DUCKDB_SPILL_DIR" in error
    stages = data_home / "assets" / program.slug
    written = sorted(p.relative_to(stages).as_posix() for p in stages.rglob("*") if p.is_file()) if stages.exists() else []
    assert not [p for p in written if p.endswith((".tmp", ".duckdb.parquet"))], written  # no staging file left
    # the stage that ran out wrote nothing; the one before it (the extract fits in 4 MB) stays whole
    assert not [p for p in written if p.startswith(("unified_candidates/", "filtered_candidates/"))], written
    assert f"raw_streams/{BATCH_DAY}.parquet" in written
