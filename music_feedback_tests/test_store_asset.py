"""What the store stage writes: one row per reachable channel, expiring TTL days after the run day."""
from __future__ import annotations

from datetime import date, datetime, timezone

import polars as pl
import pytest

from music_feedback.defs.batch.assets.store import STORE_COLUMNS, channel_rows, expires_at
from music_feedback.programs.loader import load_programs

pytestmark = pytest.mark.unit


def scored() -> pl.DataFrame:
    return pl.DataFrame({
        "listener_id": [1, 2], "track_id": [10, 10], "score": [0.9, 0.5], "propensity_score": [0.9, 0.5],
        "affinity_score": [0.9, 0.5], "marketplace": ["US", "JP"], "genre": ["pop", "pop"],
        "time_zone": ["America/Chicago", "Asia/Tokyo"], "track_name": ["T", "T"], "artist_id": [3, 3],
        "propensity_model_version": ["p@1", "p@1"], "affinity_model_version": ["a@1", "a@1"],
        "features": ["{}", "{}"], "voice_enabled": [True, False],
    })


def test_expiry_counts_from_the_run_day():
    assert expires_at(date(2026, 11, 23), 14) == int(datetime(2026, 12, 8, tzinfo=timezone.utc).timestamp())


def test_voice_rows_only_for_voice_enabled_listeners():
    program = load_programs()[0]
    rows = channel_rows(program, scored(), date(2026, 11, 23))
    assert rows.columns == STORE_COLUMNS
    assert sorted(rows.select("listener_id", "channel").iter_rows()) == [
        (1, "email"), (1, "voice-assistant"), (2, "email")]
    assert rows["expires_at"].n_unique() == 1
