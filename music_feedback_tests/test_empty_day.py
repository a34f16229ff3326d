"""A day with no candidates and no feedback: the export, playlists and metrics still complete the day."""
from __future__ import annotations

import polars as pl
import pytest
from dagster import instance_for_test

from music_feedback import settings
from music_feedback.definitions import build_definitions
from music_feedback.programs.loader import load_programs
from music_feedback_tools.simulate.day import run_job
from music_feedback.store.base import CANDIDATE_SCHEMA

pytestmark = pytest.mark.graph

DAY = "2026-11-23"


def test_a_day_with_nothing_completes(data_home):
    program, defs = load_programs()[0], build_definitions()
    # the batch's output for a day on which nothing passed the filters: an empty scored frame
    scored = pl.DataFrame(schema={**CANDIDATE_SCHEMA, "voice_enabled": pl.Boolean})
    path = settings.io_root() / program.slug / "scored_candidates" / f"{DAY}.parquet"
    path.parent.mkdir(parents=True)
    scored.write_parquet(path)
    with instance_for_test() as instance:
        for job in ("export", "playlists", "metrics"):
            result = run_job(defs, f"{program.slug}_{job}", DAY, instance)
            assert result["success"], (job, result["error"])
        meta = result["meta"]["daily_metrics"]
    assert (data_home / "lake" / "candidates" / f"run_date={DAY}").is_dir()  # exported, empty
    assert meta["feedback"] == 0 and (data_home / "reports" / program.program_id / DAY / "report.html").exists()
