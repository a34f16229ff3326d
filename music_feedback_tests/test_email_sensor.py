"""Runs wait for their data: each marketplace's email for day D starts once D's batch is stored and its local
send time has come, in every zone from UTC-12 to UTC+14, and a day with no stored batch fails by name.

The sensor is driven through Dagster's test helpers at ticks every 15 minutes over several days, on the
process clock (MUSIC_FEEDBACK_CLOCK_OFFSET_S), with the batch's materializations reported as they land."""
from __future__ import annotations

import time
from datetime import date, datetime, timedelta, timezone

import pytest
import yaml
from dagster import (AssetMaterialization, DailyPartitionsDefinition, MultiPartitionKey, build_sensor_context,
                     instance_for_test)

from music_feedback.clock import OFFSET_ENV
from music_feedback.defs.common import key
from music_feedback.defs.delivery.assets import build_email
from music_feedback.defs.delivery.jobs import email_job
from music_feedback.defs.delivery.sensors import email_sensor
from music_feedback.programs.loader import BUILTIN_DIR
from music_feedback.programs.model import Program

pytestmark = pytest.mark.integration

DAYS = [date(2026, 11, 20), date(2026, 11, 21), date(2026, 11, 22)]
TICK = timedelta(minutes=15)
ON_TIME, LATE = timedelta(hours=2, minutes=10), timedelta(hours=4, minutes=40)  # after D ends, in UTC

# Each family's marketplaces, their zones, and 10:00 local as UTC time after D has ended (D+1 00:00 UTC).
# East of UTC+10, 10:00 on D+1 comes before D has ended, so the day goes out at 10:00 on D+2.
FAMILIES = {
    "JP": ({"JP": "Asia/Tokyo"}, {"JP": timedelta(hours=1)}),
    "IN": ({"IN": "Asia/Kolkata"}, {"IN": timedelta(hours=4, minutes=30)}),
    "US": ({"US": "America/New_York", "UW": "America/Los_Angeles"},
           {"US": timedelta(hours=15), "UW": timedelta(hours=18)}),
    "date line": ({"KI": "Pacific/Kiritimati", "AS": "Pacific/Pago_Pago", "XX": "Etc/GMT+12"},
                  {"KI": timedelta(hours=20), "AS": timedelta(hours=21), "XX": timedelta(hours=22)}),
}


def program_with(zones: dict[str, str]) -> Program:
    raw = yaml.safe_load((BUILTIN_DIR / "music-feedback.yaml").read_text())
    raw.update(marketplaces=list(zones), marketplaceTimeZones=zones, partitionsStartDate="2026-11-01")
    return Program.model_validate(raw)


def day_end(day: date) -> datetime:
    return datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=timezone.utc)


def drive(program: Program, monkeypatch, stored_at: dict[date, datetime], start: datetime, end: datetime):
    """Tick the program's email sensor from `start` to `end`, reporting each batch as stored at its time.
    Returns {(day, marketplace): (tick, tags)} of every run requested, and the skip reason of each tick."""
    daily = DailyPartitionsDefinition(start_date="2026-11-01", end_offset=0)
    sensor = email_sensor(program, email_job(program, build_email(program, daily)), daily)
    requested, skips, cursor = {}, {}, None
    with instance_for_test() as instance:
        t = start
        while t < end:
            for day, at in list(stored_at.items()):
                if at <= t:
                    instance.report_runless_asset_event(AssetMaterialization(
                        asset_key=key(program, "stored_candidates"), partition=day.isoformat()))
                    del stored_at[day]
            offset = t.timestamp() - time.time()
            monkeypatch.setenv(OFFSET_ENV, repr(offset))
            result = sensor(build_sensor_context(instance=instance, cursor=cursor,
                                                 last_sensor_start_time=start.timestamp() - offset))
            cursor = result.cursor
            for request in result.run_requests or []:
                keys = request.partition_key.keys_by_dimension
                pair = (date.fromisoformat(keys["date"]), keys["marketplace"])
                assert pair not in requested, f"{pair} requested twice"
                requested[pair] = (t, request.tags)
            if result.skip_reason:
                skips[t] = result.skip_reason.skip_message
            t += TICK
    return requested, skips


@pytest.mark.parametrize("family", list(FAMILIES))
def test_each_marketplace_runs_every_day_once_its_batch_is_stored_and_its_send_time_has_come(monkeypatch, family):
    zones, send_after_day_end = FAMILIES[family]
    program = program_with(zones)
    stored_at = {d: day_end(d) + (LATE if d == DAYS[1] else ON_TIME) for d in DAYS}
    start = day_end(DAYS[0]) + timedelta(hours=2)  # the day before's windows (to 02:00 UTC west of -11) are closed
    # until the last day's latest send time has passed, and before a day after DAYS has ended
    requested, skips = drive(program, monkeypatch, dict(stored_at), start, day_end(DAYS[-1]) + timedelta(hours=23))

    assert set(requested) == {(d, m) for d in DAYS for m in zones}  # every day, every marketplace, once
    for (day, market), (tick, tags) in requested.items():
        send_at = day_end(day) + send_after_day_end[market]
        due = max(send_at, stored_at[day])
        # started at the first tick once both hold: not before the batch, not before the send time
        assert due <= tick < due + TICK, (day, market, tick, due)
        assert tick < send_at + timedelta(hours=4)  # inside the lateness window: it sends, nothing expires
        assert tags["music_feedback/email_trigger"] == "batch stored"
    # the tick before each request says what it waits for
    for (day, market), (tick, _) in requested.items():
        reason = skips.get(tick - TICK, "")
        if f"{market} {day}" in reason:
            assert "waits for" in reason


def test_japan_waits_for_the_batch_after_its_send_time(monkeypatch):
    """10:00 in Tokyo is 01:00 UTC, an hour before the batch: the run waits and says why."""
    program = program_with({"JP": "Asia/Tokyo"})
    day = DAYS[0]
    requested, skips = drive(program, monkeypatch, {day: day_end(day) + ON_TIME}, day_end(day),
                             day_end(day) + timedelta(hours=4))
    assert requested[(day, "JP")][0] == day_end(day) + timedelta(hours=2, minutes=15)
    waiting = skips[day_end(day) + timedelta(hours=1, minutes=30)]
    assert f"JP {day}: send time has come; waits for the batch" in waiting
    assert "music_feedback/stored_candidates" in waiting and "Asia/Tokyo" in waiting
    assert f"JP {day}: waits for its send time" in skips[day_end(day) + timedelta(minutes=30)]


def test_past_the_date_line_the_day_waits_for_the_next_local_morning(monkeypatch):
    program = program_with({"KI": "Pacific/Kiritimati"})
    day = DAYS[0]
    requested, skips = drive(program, monkeypatch, {day: day_end(day) + ON_TIME}, day_end(day),
                             day_end(day) + timedelta(days=1))
    assert requested[(day, "KI")][0] == day_end(day) + timedelta(hours=20)  # 10:00 local on D+2
    noon = skips[day_end(day) + timedelta(hours=12)]
    assert f"KI {day}: waits for its send time {day + timedelta(days=2)} 10:00 Pacific/Kiritimati" in noon
    assert "batch stored" in noon


def test_a_day_whose_batch_never_comes_gets_one_failing_run_when_its_window_closes(monkeypatch):
    program = program_with({"IN": "Asia/Kolkata"})
    day = DAYS[0]
    send_at = day_end(day) + timedelta(hours=4, minutes=30)
    requested, skips = drive(program, monkeypatch, {}, day_end(day), day_end(day) + timedelta(days=1))
    tick, tags = requested[(day, "IN")]
    assert tick == send_at + timedelta(hours=4)  # the lateness window closed without a batch
    assert tags["music_feedback/email_trigger"] == "window closed"
    assert all(f"IN {day}: send time has come; waits for the batch" in skips[t]
               for t in (send_at, send_at + timedelta(hours=2)))


def test_turning_the_sensor_on_starts_no_stale_runs(monkeypatch):
    """Windows that closed before the sensor was started are not requested, stored or not."""
    program = program_with({"JP": "Asia/Tokyo", "IN": "Asia/Kolkata"})
    day = DAYS[0]
    start = day_end(day) + timedelta(hours=9)  # both windows (JP to 05:00, IN to 08:30 UTC) have closed
    requested, _ = drive(program, monkeypatch, {day: day_end(day) + ON_TIME}, start, start + timedelta(hours=12))
    assert not requested


# ---------------------------------------------------------------- the run the sensor starts

def _ledger(program, day: date) -> dict:
    from music_feedback.resources import feedback_store
    return feedback_store().ledger_counts(program.program_id, day.isoformat())


def test_an_email_run_for_a_day_with_no_stored_batch_fails_naming_it(data_home):
    from music_feedback.definitions import build_definitions
    from music_feedback.delivery.runner import run_email
    from music_feedback.programs.loader import load_programs
    from music_feedback_tests.conftest import BATCH_DAY
    program, defs = load_programs()[0], build_definitions()
    with instance_for_test() as instance:
        results = run_email(defs, program, BATCH_DAY, instance)  # as at each send time, as `make run` does
    assert [r["marketplace"] for r in results] == program.marketplaces
    for r in results:
        assert not r["success"] and not r["meta"]
        assert r["error"].startswith(f"no stored batch for program music-feedback, day {BATCH_DAY}")
        assert "music_feedback/stored_candidates" in r["error"]
    assert _ledger(program, BATCH_DAY) == {}


def test_a_stored_day_is_sent_once_its_send_time_has_come_on_the_process_clock(data_home, small_warehouse,
                                                                                 monkeypatch):
    from music_feedback.definitions import build_definitions
    from music_feedback.defs.delivery.jobs import email_job_name
    from music_feedback.delivery.email.plan import send_window
    from music_feedback.delivery.holdout import is_held_out
    from music_feedback.runner import _first_error
    from music_feedback_tests.delivery_support import DAY, PROGRAM, seed_day
    listeners = seed_day(data_home, small_warehouse, 40, market="JP")
    job = build_definitions().resolve_job_def(email_job_name(PROGRAM))
    partition = MultiPartitionKey({"date": DAY.isoformat(), "marketplace": "JP"})
    send_at, _ = send_window(PROGRAM, "JP", DAY)
    with instance_for_test() as instance:
        instance.report_runless_asset_event(AssetMaterialization(
            asset_key=key(PROGRAM, "stored_candidates"), partition=DAY.isoformat()))
        monkeypatch.setenv(OFFSET_ENV, repr(send_at - 1800 - time.time()))  # 09:30 in Tokyo
        early = job.execute_in_process(partition_key=partition, instance=instance, raise_on_error=False)
        assert not early.success and "has not come" in _first_error(early) and "Asia/Tokyo" in _first_error(early)
        assert _ledger(PROGRAM, DAY) == {}  # refused whole: nothing planned

        monkeypatch.setenv(OFFSET_ENV, repr(send_at + 4500 - time.time()))  # 11:15, after a late batch
        run = job.execute_in_process(partition_key=partition, instance=instance, raise_on_error=False)
    assert run.success, _first_error(run)
    (event,) = run.get_asset_materialization_events()
    held = sum(is_held_out(PROGRAM, lid) for lid in listeners)
    assert event.materialization.metadata["sent"].value == 40 - held > 0
