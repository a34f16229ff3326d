"""The serving bench reads a full TTL window: 14 live days. The batch stores one; the 13 days before it
are copies of it with the batch date, expiry and listener ids shifted, so each day is as big as a real one."""
from __future__ import annotations

from datetime import date, timedelta

import polars as pl

from music_feedback import settings
from music_feedback.defs.batch.assets.store import channel_rows
from music_feedback.defs.common import key
from music_feedback.programs.model import Program
from music_feedback.store.base import CandidateStore

LISTENER_SHIFT = 10_000_000


def day_rows(program: Program, day: date) -> pl.DataFrame:
    """The rows the batch stored for `day`: its scored candidates, one row per reachable channel."""
    path = settings.io_root().joinpath(*key(program, "scored_candidates").path, f"{day.isoformat()}.parquet")
    if not path.exists():
        raise RuntimeError(f"no scored candidates for {day} at {path}: run the batch section first")
    return channel_rows(program, pl.read_parquet(path), day)


def fill_history(store: CandidateStore, program: Program, latest: date, days: int = 14) -> int:
    """Store days latest-1 .. latest-(days-1) unless present; returns how many were written."""
    base = None
    written = 0
    for k in range(1, days):
        day = (latest - timedelta(days=k)).isoformat()
        if store.count(program.program_id, day):
            continue
        if base is None:
            base = day_rows(program, latest)
        store.put_batch(program.program_id, day, base.with_columns(
            pl.col("listener_id") + k * LISTENER_SHIFT, pl.col("expires_at") - k * 86_400))
        written += 1
    return written
