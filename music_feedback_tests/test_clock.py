"""The one clock: offset from the wall clock, or stopped at an instant, and handed to a child process."""
from __future__ import annotations

import time

import pytest

from music_feedback.clock import OFFSET_ENV, STOPPED_ENV, SYSTEM, Clock

pytestmark = pytest.mark.unit


def test_a_clock_at_an_instant_runs_on_and_a_stopped_one_does_not():
    running, stopped = Clock.at(1_000_000.0), Clock.stopped(1_000_000.0)
    first = running.now()
    time.sleep(0.02)
    assert 1_000_000.0 <= first < running.now() < 1_000_001.0
    assert stopped.now() == stopped.now() == 1_000_000.0
    assert stopped.datetime().timestamp() == 1_000_000.0


def test_a_child_process_gets_the_same_clock(monkeypatch):
    for clock in (Clock.at(2_000_000.0), Clock.stopped(2_000_000.0)):
        for var in (OFFSET_ENV, STOPPED_ENV):
            monkeypatch.delenv(var, raising=False)
        for var, value in clock.env().items():
            monkeypatch.setenv(var, value)
        assert Clock.from_env() == clock


def test_no_setting_is_the_wall_clock_and_a_bad_one_is_named(monkeypatch):
    monkeypatch.delenv(OFFSET_ENV, raising=False)
    monkeypatch.delenv(STOPPED_ENV, raising=False)
    assert Clock.from_env() is SYSTEM
    monkeypatch.setenv(STOPPED_ENV, "noon")
    with pytest.raises(ValueError, match=STOPPED_ENV):
        Clock.from_env()
