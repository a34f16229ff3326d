"""The serving bench reads a full TTL window: 14 live days. The batch stores one; the 13 days before it
are copies of it with the batch date, expiry and listener ids shifted, so each day is as big as a real one."""
from __future__ import annotations

from datetime import date, timedelta

import polars as pl

from music_feedback.store.base import CANDIDATE_COLUMNS, CANDIDATE_SCHEMA, CandidateStore

LISTENER_SHIFT = 10_000_000


def day_rows(store: CandidateStore, program_id: str, batch_date: str, channels: list[str]) -> pl.DataFrame:
    rows = [r for ch in channels for r in store.for_channel(program_id, ch, limit=10**9)
            if r["batch_date"] == batch_date]
    return pl.DataFrame([{c: r[c] for c in CANDIDATE_COLUMNS} for r in rows], schema=CANDIDATE_SCHEMA)


def fill_history(store: CandidateStore, program_id: str, latest: date, channels: list[str], days: int = 14) -> int:
    """Store days latest-1 .. latest-(days-1) unless present; returns how many were written."""
    base = None
    written = 0
    for k in range(1, days):
        day = (latest - timedelta(days=k)).isoformat()
        if store.count(program_id, day):
            continue
        if base is None:
            base = day_rows(store, program_id, latest.isoformat(), channels)
        store.put_batch(program_id, day, base.with_columns(
            pl.col("listener_id") + k * LISTENER_SHIFT, pl.col("expires_at") - k * 86_400))
        written += 1
    return written
