"""Whole simulated days through the jobs the schedules run: the batch, the export, the email, listeners on
the real endpoints, the playlists and the metrics report; then the next day sees the first."""
from __future__ import annotations

import json
from datetime import timedelta

import polars as pl
import pytest
from dagster import instance_for_test

from music_feedback import runner
from music_feedback.definitions import build_definitions
from music_feedback.metrics.sink import SQLiteMetricsSink
from music_feedback.programs.loader import load_programs
from music_feedback.resources import feedback_store
from music_feedback_tools.simulate.day import run_day, run_job
from music_feedback_tests.conftest import BATCH_DAY

pytestmark = pytest.mark.graph

DAY1, DAY2 = BATCH_DAY - timedelta(days=1), BATCH_DAY


@pytest.fixture(scope="module")
def two_days(tmp_path_factory, small_warehouse):
    home = tmp_path_factory.mktemp("whole-day")
    mp = pytest.MonkeyPatch()
    mp.setenv("MUSIC_FEEDBACK_HOME", str(home))
    mp.setenv("MUSIC_FEEDBACK_WAREHOUSE", str(small_warehouse))
    for var in ("MUSIC_FEEDBACK_ENV", "MUSIC_FEEDBACK_PROGRAM", "MUSIC_FEEDBACK_PROGRAMS_DIR"):
        mp.delenv(var, raising=False)
    program, defs = load_programs()[0], build_definitions()
    with instance_for_test() as instance:
        runner.ensure_models(defs, program, instance, day=DAY2)
        reports = [run_day(defs, program, d, instance) for d in (DAY1, DAY2)]
        yield program, defs, instance, reports, home
    mp.undo()


def test_each_day_completes_every_step(two_days):
    program, _, _, reports, home = two_days
    for report in reports:
        assert report.success, report.failure
        assert list(report.steps) == ["batch", "export", "email", "listeners", "playlists", "metrics"]
        assert any(line.startswith("funnel of the day's requests") for line in report.lines)
    for day in (DAY1, DAY2):
        assert (home / "lake" / "candidates" / f"run_date={day}").is_dir()
        exported = pl.read_parquet(next((home / "lake" / "candidates" / f"run_date={day}").rglob("*.parquet")))
        assert exported.schema["features"] == pl.String  # the lake keeps the logged features as JSON text
        assert {"engagement_score", "genre"} <= set(json.loads(exported["features"][0]))
        folder = home / "reports" / program.program_id / day.isoformat()
        assert {"report.html", "funnel.png", "scores.png", "feedback.png", "playlist_moves.png"} <= {
            p.name for p in folder.iterdir()}
        assert (folder / "funnel.png").read_bytes().startswith(b"\x89PNG")


def test_listeners_answer_at_the_seed_rates(two_days):
    program, _, _, _, home = two_days
    metrics = {(m["name"], m["dimensions"].get("Channel"), m["dimensions"].get("Marketplace")): m["value"]
               for m in SQLiteMetricsSink(path=str(home / "metrics.sqlite")).read(program.program_id, DAY1.isoformat())}
    delivered = sum(v for (n, ch, _), v in metrics.items() if n == "Delivered" and ch == "email")
    rate = {name: sum(v for (n, ch, _), v in metrics.items() if n == name and ch == "email") / delivered
            for name in ("Opened", "Clicked", "Submitted")}
    assert delivered > 500
    assert abs(rate["Opened"] - 0.30) < 0.05 and abs(rate["Clicked"] - 0.18) < 0.04 and abs(rate["Submitted"] - 0.15) < 0.04
    opened_human = sum(v for (n, ch, _), v in metrics.items() if n == "OpenedHuman" and ch == "email")
    assert 0 < opened_human < rate["Opened"] * delivered  # machine opens set apart
    assert metrics[("FeedbackVolume", None, None)] > 0 and metrics[("CostPerFeedback", None, None)] > 0
    assert any(n == "Submitted" and ch == "voice-assistant" and v > 0 for (n, ch, _), v in metrics.items())


def test_the_second_day_sees_the_first(two_days):
    program, _, _, _, home = two_days
    fb = feedback_store()
    answered = fb.answers(program.program_id, float("inf")).filter(pl.col("batch_date") == DAY1.isoformat())
    decisions = pl.read_parquet(home / "assets" / program.slug / "candidate_decisions" / f"{DAY2}.parquet")
    again = decisions.join(answered.select("listener_id", "track_id"), on=["listener_id", "track_id"])
    assert set(again["reason"].unique()) <= {"already_gave_feedback", "opted_out", "bot_activity", "not_authentic",
                                             "unknown_listener", "low_engagement", "weekly_cap_reached",
                                             "over_weekly_cap", "marketplace_not_in_program", "track_not_eligible"}
    stored = pl.read_parquet(home / "assets" / program.slug / "filtered_candidates" / f"{DAY2}.parquet")
    assert stored.join(answered.select("listener_id", "track_id"), on=["listener_id", "track_id"]).is_empty()
    summary = two_days[3][0].summary["summary"]  # the daily_metrics asset's summary in the UI
    # the warehouse ends before day 1's lift window: the lift waits for it, and says so
    assert "| Business | holdout lift | not measured: the window 2026-11-24..2026-11-30 needs plays" in summary


def test_rerunning_a_days_operations_gives_the_same_result(two_days):
    program, defs, instance, _, home = two_days
    audit_before = (home / "playlists.sqlite").stat().st_size
    for job in ("export", "playlists", "metrics"):
        assert run_job(defs, f"{program.slug}_{job}", DAY2.isoformat(), instance)["success"]
    sink = SQLiteMetricsSink(path=str(home / "metrics.sqlite"))
    names = [m["name"] for m in sink.read(program.program_id, DAY2.isoformat())]
    assert len(names) == len(set((m["name"], json.dumps(m["dimensions"], sort_keys=True))
                                 for m in sink.read(program.program_id, DAY2.isoformat())))
    assert audit_before > 0


def test_a_metrics_sink_that_is_down_fails_clearly_then_the_next_run_completes(two_days):
    program, defs, instance, _, home = two_days
    db = home / "metrics.sqlite"
    saved = db.with_suffix(".saved")
    db.rename(saved)
    db.mkdir()  # the sink cannot open its database
    try:
        result = run_job(defs, f"{program.slug}_metrics", DAY2.isoformat(), instance)
        assert not result["success"] and "did not take the day's metrics" in result["error"]
    finally:
        db.rmdir()
        saved.rename(db)
    assert run_job(defs, f"{program.slug}_metrics", DAY2.isoformat(), instance)["success"]
