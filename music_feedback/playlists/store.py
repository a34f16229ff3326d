"""The curated playlists and their audit trail. Port and embedded SQLite adapter; an update replaces the
day's changes in one transaction, so re-running a day does not repeat its moves."""
from __future__ import annotations

import abc
import sqlite3
from contextlib import closing
from pathlib import Path

import polars as pl
from dagster import ConfigurableResource

AUDIT_COLUMNS = ("marketplace", "genre", "track_id", "track_name", "action", "prior", "up", "down", "votes", "score")


class PlaylistStore(ConfigurableResource):
    @abc.abstractmethod
    def members(self, program_id: str) -> pl.DataFrame:
        """marketplace, genre, track_id, track_name, score, since."""

    @abc.abstractmethod
    def apply(self, program_id: str, run_date: str, changes: pl.DataFrame, at: float) -> int:
        """Undo `run_date`'s earlier changes (a re-run), then apply `changes` (AUDIT_COLUMNS; action enter or
        leave) and write one audit row each. Returns rows changed."""

    @abc.abstractmethod
    def audit(self, program_id: str) -> pl.DataFrame:
        ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS playlist_members (
  program_id TEXT NOT NULL, marketplace TEXT NOT NULL, genre TEXT NOT NULL, track_id INTEGER NOT NULL,
  track_name TEXT, score REAL NOT NULL, since TEXT NOT NULL,
  PRIMARY KEY (program_id, marketplace, genre, track_id));
CREATE TABLE IF NOT EXISTS playlist_audit (
  id INTEGER PRIMARY KEY AUTOINCREMENT, program_id TEXT NOT NULL, run_date TEXT NOT NULL, marketplace TEXT NOT NULL,
  genre TEXT NOT NULL, track_id INTEGER NOT NULL, track_name TEXT, action TEXT NOT NULL, prior REAL, up REAL,
  down REAL, votes INTEGER, score REAL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS playlist_audit_day ON playlist_audit (program_id, run_date);
"""


class SQLitePlaylistStore(PlaylistStore):
    path: str

    def _connect(self) -> sqlite3.Connection:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(_SCHEMA)
        return conn

    def members(self, program_id: str) -> pl.DataFrame:
        with closing(self._connect()) as conn:
            rows = conn.execute("SELECT marketplace, genre, track_id, track_name, score, since FROM playlist_members "
                                "WHERE program_id = ? ORDER BY marketplace, genre, score DESC", (program_id,)).fetchall()
        return pl.DataFrame(rows, orient="row", schema={"marketplace": pl.Utf8, "genre": pl.Utf8, "track_id": pl.Int64,
                                                        "track_name": pl.Utf8, "score": pl.Float64, "since": pl.Utf8})

    def apply(self, program_id: str, run_date: str, changes: pl.DataFrame, at: float) -> int:
        with closing(self._connect()) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                self._undo(conn, program_id, run_date)
                for row in changes.select(AUDIT_COLUMNS).iter_rows(named=True):
                    key = (program_id, row["marketplace"], row["genre"], row["track_id"])
                    if row["action"] == "enter":
                        conn.execute("INSERT OR REPLACE INTO playlist_members VALUES (?, ?, ?, ?, ?, ?, ?)",
                                     (*key, row["track_name"], row["score"], run_date))
                    else:
                        conn.execute("DELETE FROM playlist_members WHERE program_id = ? AND marketplace = ? "
                                     "AND genre = ? AND track_id = ?", key)
                    conn.execute(f"INSERT INTO playlist_audit (program_id, run_date, {', '.join(AUDIT_COLUMNS)}, at) "
                                 f"VALUES (?, ?, {', '.join('?' * len(AUDIT_COLUMNS))}, ?)",
                                 (program_id, run_date, *row.values(), at))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return changes.height

    @staticmethod
    def _undo(conn: sqlite3.Connection, program_id: str, run_date: str) -> None:
        """Reverse a day's earlier moves, newest first, so the day can be applied again from scratch."""
        done = conn.execute("SELECT id, marketplace, genre, track_id, track_name, action, score FROM playlist_audit "
                            "WHERE program_id = ? AND run_date = ? ORDER BY id DESC", (program_id, run_date)).fetchall()
        for _, market, genre, track, name, action, score in done:
            key = (program_id, market, genre, track)
            if action == "enter":
                conn.execute("DELETE FROM playlist_members WHERE program_id = ? AND marketplace = ? AND genre = ? "
                             "AND track_id = ?", key)
            else:
                conn.execute("INSERT OR REPLACE INTO playlist_members VALUES (?, ?, ?, ?, ?, ?, ?)",
                             (*key, name, score, run_date))
        conn.execute("DELETE FROM playlist_audit WHERE program_id = ? AND run_date = ?", (program_id, run_date))

    def audit(self, program_id: str) -> pl.DataFrame:
        with closing(self._connect()) as conn:
            cur = conn.execute("SELECT * FROM playlist_audit WHERE program_id = ? ORDER BY id", (program_id,))
            names = [d[0] for d in cur.description]
            return pl.DataFrame(cur.fetchall(), orient="row", schema=names)
