"""The holdout lift of batch day D is measured over its whole window D+2..D+8, and the sensor re-runs D's
metrics once the warehouse holds those plays: the 23:59 run of D+1 never can."""
from __future__ import annotations

import shutil
import time
from datetime import date, datetime, timedelta

import duckdb
import pytest
from dagster import build_sensor_context, instance_for_test

from music_feedback import settings
from music_feedback.definitions import build_definitions
from music_feedback.metrics.sink import SQLiteMetricsSink
from music_feedback.programs.loader import load_programs
from music_feedback.resources import feedback_store, get_resources
from music_feedback_tools.simulate.day import run_job
from music_feedback_tests.conftest import BATCH_DAY

pytestmark = pytest.mark.graph

DAY = BATCH_DAY - timedelta(days=1)  # the warehouse's first day of plays, so the first partition
TRACK = 987_654  # a track no generated play touches
TREATED, HELD_OUT = range(1, 201), range(201, 301)


def empty_scored(program, day: date) -> None:
    import polars as pl
    from music_feedback.store.base import CANDIDATE_SCHEMA
    path = settings.io_root() / program.slug / "scored_candidates" / f"{day}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pl.DataFrame(schema={**CANDIDATE_SCHEMA, "voice_enabled": pl.Boolean}).write_parquet(path)


def add_plays(warehouse, plays: list[tuple[int, date]]) -> None:
    """Plays of TRACK by listener on day, as the warehouse's daily load would add them."""
    with duckdb.connect(str(warehouse)) as con:
        con.executemany(
            "INSERT INTO track_plays (listener_id, track_id, play_count, completion_rate, engagement_score, "
            "playback_ms, played_at, track_release_date, genre, artist_id) VALUES (?, ?, 1, 1.0, 0.9, 200000, ?, "
            "?, 'pop', 1)", [(lid, TRACK, datetime.combine(d, datetime.min.time()) + timedelta(hours=12), DAY)
                             for lid, d in plays])


@pytest.fixture
def lift_day(data_home, small_warehouse, monkeypatch):
    """Day D's requests (200 asked, 100 held out, one track) on a copy of the warehouse that can grow."""
    warehouse = data_home / "warehouse.duckdb"
    shutil.copy(small_warehouse, warehouse)
    monkeypatch.setenv("MUSIC_FEEDBACK_WAREHOUSE", str(warehouse))
    program = load_programs()[0]
    store = feedback_store()
    for lid in [*TREATED, *HELD_OUT]:
        row = {"listener_id": lid, "track_id": TRACK, "marketplace": "US", "genre": "pop", "track_name": "t",
               "artist_id": 1, "score": 0.8, "campaign": "c"}
        store.record_contact(program.program_id, DAY.isoformat(), "email", row,
                             "sent" if lid in TREATED else "held_out", time.time())
    empty_scored(program, DAY)
    return program, build_definitions(), warehouse


def evaluate(sensor, instance, defs):
    """One evaluation, with the warehouse the definitions give it (as the daemon would)."""
    with build_sensor_context(instance=instance, definitions=defs,
                              resources={"warehouse": get_resources()["warehouse"]}) as context:
        return sensor.evaluate_tick(context)


def metrics_of(program, day: date) -> dict:
    sink = SQLiteMetricsSink(path=str(settings.data_home() / "metrics.sqlite"))
    rows = sink.read(program.program_id, day.isoformat())
    return {m["name"]: m["value"] for m in rows if not m["dimensions"]}


def test_a_partial_window_is_not_measured_and_the_sensor_waits(lift_day):
    program, defs, warehouse = lift_day
    add_plays(warehouse, [(lid, DAY + timedelta(days=2)) for lid in range(1, 61)])  # only D+2 is in so far
    sensor = defs.resolve_sensor_def(f"{program.slug}_holdout_lift")
    with instance_for_test() as instance:
        result = run_job(defs, f"{program.slug}_metrics", DAY.isoformat(), instance)
        assert result["success"], result["error"]
        meta = result["meta"]["daily_metrics"]
        assert meta["lift_status"] == "waiting" and "lift_pp" not in meta
        assert "holdout lift | not measured: the window 2026-11-24..2026-11-30 needs plays through 2026-11-30; " \
               "the warehouse has plays through 2026-11-24" in meta["summary"]
        assert "HoldoutLift" not in metrics_of(program, DAY)
        tick = evaluate(sensor, instance, defs)
        assert not tick.run_requests and "plays through 2026-11-24" in tick.skip_message


def test_the_sensor_reruns_the_day_once_its_window_is_in_and_the_lift_is_measured(lift_day):
    program, defs, warehouse = lift_day
    window = [DAY + timedelta(days=k) for k in range(2, 9)]
    sensor = defs.resolve_sensor_def(f"{program.slug}_holdout_lift")
    assert sensor.job_name == f"{program.slug}_metrics"
    add_plays(warehouse, [(lid, DAY + timedelta(days=1)) for lid in range(61, 120)])  # the send day: not counted
    with instance_for_test() as instance:
        first = run_job(defs, f"{program.slug}_metrics", DAY.isoformat(), instance)  # as at 23:59 on D+1
        assert first["meta"]["daily_metrics"]["lift_status"] == "waiting"
        # the daily loads bring the window: 60 of 200 asked and 20 of 100 held out play the track again, some
        # on its last day; the plays of the day after it do not count
        add_plays(warehouse, [(lid, window[lid % 7]) for lid in [*range(1, 61), *range(201, 221)]]
                  + [(lid, DAY + timedelta(days=9)) for lid in range(221, 301)])
        with instance_for_test() as fresh:  # a day never run is the schedule's, not the sensor's
            assert not evaluate(sensor, fresh, defs).run_requests

        tick = evaluate(sensor, instance, defs)
        (request,) = tick.run_requests
        assert request.partition_key == DAY.isoformat()
        assert request.run_key == f"holdout-lift-{DAY}-plays-through-{DAY + timedelta(days=9)}"
        again = evaluate(sensor, instance, defs).run_requests
        assert [r.run_key for r in again] == [request.run_key]  # the same key: Dagster launches it once

        rerun = run_job(defs, f"{program.slug}_metrics", request.partition_key, instance)
        assert rerun["success"], rerun["error"]
        meta = rerun["meta"]["daily_metrics"]
        assert meta["lift_status"] == "measured" and meta["lift_window"] == "2026-11-24..2026-11-30"
        assert meta["lift_pp"] == pytest.approx(10.0)  # 30 % of the asked against 20 % of the held out
        assert meta["lift_ci95_low_pp"] == pytest.approx(-0.09, abs=1e-3)
        assert meta["lift_ci95_high_pp"] == pytest.approx(20.09, abs=1e-3)
        sunk = metrics_of(program, DAY)
        assert sunk["HoldoutLift"] == pytest.approx(10.0)
        assert (sunk["HoldoutLiftCI95Low"], sunk["HoldoutLiftCI95High"]) == (meta["lift_ci95_low_pp"],
                                                                             meta["lift_ci95_high_pp"])
        folder = settings.data_home() / "reports" / program.program_id / DAY.isoformat()
        assert (folder / "lift.png").read_bytes().startswith(b"\x89PNG")
        assert "+10.00 pp (95 % interval -0.09 to +20.09 pp)" in (folder / "report.html").read_text()

        tick = evaluate(sensor, instance, defs)
        assert not tick.run_requests and isinstance(tick.skip_message, str)  # measured: nothing more to do

        # a backfill later, with a fuller warehouse, gives what the measuring run gave
        add_plays(warehouse, [(lid, DAY + timedelta(days=12)) for lid in range(61, 200)])
        later = run_job(defs, f"{program.slug}_metrics", DAY.isoformat(), instance)["meta"]["daily_metrics"]
        assert {k: later[k] for k in ("lift_pp", "lift_ci95_low_pp", "lift_ci95_high_pp")} == {
            k: meta[k] for k in ("lift_pp", "lift_ci95_low_pp", "lift_ci95_high_pp")}
