"""Embedded adapter of the score cache: one SQLite table (WAL), joined against the day's pairs."""
from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import datetime
from pathlib import Path

import polars as pl

from music_feedback.scoring.cache.port import PAIR, SCHEMA, ScoreCache, epoch
from music_feedback.transforms.unify import packable, pair_key

DDL = """CREATE TABLE IF NOT EXISTS score_cache (
  program_id TEXT NOT NULL, versions TEXT NOT NULL, listener_id INTEGER NOT NULL, track_id INTEGER NOT NULL,
  propensity_score REAL NOT NULL, affinity_score REAL NOT NULL, expires_at INTEGER NOT NULL,
  PRIMARY KEY (program_id, versions, listener_id, track_id)) WITHOUT ROWID"""

# CROSS JOIN keeps the wanted pairs outside: one primary-key probe of the cache per pair.
_HITS = ("SELECT c.listener_id, c.track_id, c.propensity_score, c.affinity_score FROM {wanted} "
         "CROSS JOIN score_cache c ON c.program_id = ? AND c.versions = ? AND c.listener_id = {listener} "
         "AND c.track_id = {track} WHERE c.expires_at > ?")


class SQLiteScoreCache(ScoreCache):
    path: str

    def _connect(self) -> sqlite3.Connection:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self.path, timeout=30)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=NORMAL")
        con.execute(DDL)
        return con

    def lookup(self, program_id: str, versions: str, pairs: pl.DataFrame, now: datetime) -> pl.DataFrame:
        if pairs.height == 0:
            return self.empty()
        with closing(self._connect()) as con:
            if packable(pairs.lazy()):
                # One JSON array of packed keys, unpacked by SQLite: no Python tuple per pair. Sorted, so
                # the probes walk the cache's key order (0.3 s instead of 0.45 s for 200K pairs).
                packed = pairs.select(pair_key().unique().sort().cast(pl.Utf8).str.join(",")).item()
                rows = con.execute(_HITS.format(wanted="json_each('[' || ? || ']') AS w", listener="(w.value >> 32)",
                                                track="(w.value & 4294967295)"),
                                   (packed, program_id, versions, epoch(now))).fetchall()
            else:
                con.execute("CREATE TEMP TABLE wanted (listener_id INTEGER, track_id INTEGER, "
                            "PRIMARY KEY (listener_id, track_id)) WITHOUT ROWID")
                con.executemany("INSERT OR IGNORE INTO wanted VALUES (?, ?)", pairs.select(PAIR).iter_rows())
                rows = con.execute(_HITS.format(wanted="wanted AS w", listener="w.listener_id", track="w.track_id"),
                                   (program_id, versions, epoch(now))).fetchall()
        return pl.DataFrame(rows, schema=SCHEMA, orient="row")

    def store(self, program_id: str, versions: str, scores: pl.DataFrame, now: datetime) -> int:
        if scores.height == 0:
            return 0
        expires = self.expires_at(now)
        rows = ((program_id, versions, lid, tid, p, a, expires) for lid, tid, p, a in
                scores.select("listener_id", "track_id", "propensity_score", "affinity_score").iter_rows())
        with closing(self._connect()) as con, con:
            con.executemany("INSERT OR REPLACE INTO score_cache VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        return scores.height

    def purge_expired(self, now: datetime) -> int:
        with closing(self._connect()) as con, con:
            return con.execute("DELETE FROM score_cache WHERE expires_at <= ?", (epoch(now),)).rowcount
