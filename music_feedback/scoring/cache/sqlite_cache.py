"""Embedded adapter of the score cache: one SQLite table (WAL), joined against the day's pairs."""
from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import datetime
from pathlib import Path

import polars as pl

from music_feedback.scoring.cache.port import SCHEMA, ScoreCache, epoch

DDL = """CREATE TABLE IF NOT EXISTS score_cache (
  program_id TEXT NOT NULL, versions TEXT NOT NULL, listener_id INTEGER NOT NULL, track_id INTEGER NOT NULL,
  propensity_score REAL NOT NULL, affinity_score REAL NOT NULL, expires_at INTEGER NOT NULL,
  PRIMARY KEY (program_id, versions, listener_id, track_id)) WITHOUT ROWID"""


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
            con.execute("CREATE TEMP TABLE wanted (listener_id INTEGER, track_id INTEGER, "
                        "PRIMARY KEY (listener_id, track_id)) WITHOUT ROWID")
            con.executemany("INSERT OR IGNORE INTO wanted VALUES (?, ?)",
                            pairs.select("listener_id", "track_id").iter_rows())
            # CROSS JOIN keeps `wanted` outside: one primary-key probe of the cache per wanted pair
            rows = con.execute(
                "SELECT c.listener_id, c.track_id, c.propensity_score, c.affinity_score FROM wanted w "
                "CROSS JOIN score_cache c ON c.program_id = ? AND c.versions = ? AND c.listener_id = w.listener_id "
                "AND c.track_id = w.track_id WHERE c.expires_at > ?", (program_id, versions, epoch(now))).fetchall()
        return pl.DataFrame(rows, schema=SCHEMA, orient="row").unique(["listener_id", "track_id"])

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
