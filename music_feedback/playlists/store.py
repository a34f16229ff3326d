"""The curated playlists and their audit trail. Port and embedded SQLite adapter (the DynamoDB one, for a
cluster whose tasks share them, is playlists/dynamodb.py); an update replaces the
day's changes in one transaction, so re-running a day does not repeat its moves.

The audit is the record: the members are its moves replayed in day order (then in the order applied), so
re-running an older day after newer ones, or days out of order, leaves the playlists one clean run in
order would leave."""
from __future__ import annotations

import abc
import sqlite3
from contextlib import closing
from pathlib import Path

import polars as pl
from dagster import ConfigurableResource
from pydantic import Field

AUDIT_COLUMNS = ("marketplace", "genre", "track_id", "track_name", "action", "prior", "up", "down", "votes", "score")
# What audit() returns, on every adapter: the moves in day order, then in the order applied.
AUDIT_SCHEMA = {"program_id": pl.Utf8, "run_date": pl.Utf8, "marketplace": pl.Utf8, "genre": pl.Utf8,
                "track_id": pl.Int64, "track_name": pl.Utf8, "action": pl.Utf8, "prior": pl.Float64,
                "up": pl.Float64, "down": pl.Float64, "votes": pl.Int64, "score": pl.Float64, "at": pl.Float64}


class PlaylistStore(ConfigurableResource):
    @abc.abstractmethod
    def members(self, program_id: str, before: str | None = None) -> pl.DataFrame:
        """marketplace, genre, track_id, track_name, score, since: now, or as the moves of the days before
        `before` (an ISO date) left them, which is what that day's moves are decided against."""

    @abc.abstractmethod
    def apply(self, program_id: str, run_date: str, changes: pl.DataFrame, at: float) -> int:
        """Replace `run_date`'s earlier changes (a re-run) with `changes` (AUDIT_COLUMNS; action enter or
        leave), one audit row each stamped `at`, and bring the members up to date. Returns rows changed."""

    @abc.abstractmethod
    def audit(self, program_id: str) -> pl.DataFrame:
        """AUDIT_SCHEMA: every move of the program, in day order, then in the order applied."""


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


MEMBERS_SCHEMA = _MEMBERS = {"marketplace": pl.Utf8, "genre": pl.Utf8, "track_id": pl.Int64, "track_name": pl.Utf8,
            "score": pl.Float64, "since": pl.Utf8}

# Each track's last move in day order, then in the order applied; a track whose last move is an entry is a
# member, since the day of that entry.
_REPLAY = """
SELECT marketplace, genre, track_id, track_name, score, run_date AS since FROM (
  SELECT marketplace, genre, track_id, track_name, score, run_date, action, ROW_NUMBER() OVER (
    PARTITION BY marketplace, genre, track_id ORDER BY run_date DESC, id DESC) AS latest
  FROM playlist_audit WHERE program_id = ? {before})
WHERE latest = 1 AND action = 'enter'"""


class SQLitePlaylistStore(PlaylistStore):
    path: str = Field(description=(
        'SQLite file of the curated playlists and their audit rows '
        '(MUSIC_FEEDBACK_HOME/playlists.sqlite).'))

    def _connect(self) -> sqlite3.Connection:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(_SCHEMA)
        return conn

    def members(self, program_id: str, before: str | None = None) -> pl.DataFrame:
        if before is None:
            query, args = ("SELECT marketplace, genre, track_id, track_name, score, since FROM playlist_members "
                           "WHERE program_id = ?"), (program_id,)
        else:
            query, args = _REPLAY.format(before="AND run_date < ?"), (program_id, before)
        with closing(self._connect()) as conn:
            rows = conn.execute(query + " ORDER BY marketplace, genre, score DESC, track_id", args).fetchall()
        return pl.DataFrame(rows, orient="row", schema=_MEMBERS)

    def apply(self, program_id: str, run_date: str, changes: pl.DataFrame, at: float) -> int:
        with closing(self._connect()) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute("DELETE FROM playlist_audit WHERE program_id = ? AND run_date = ?",
                             (program_id, run_date))
                conn.executemany(
                    f"INSERT INTO playlist_audit (program_id, run_date, {', '.join(AUDIT_COLUMNS)}, at) "
                    f"VALUES (?, ?, {', '.join('?' * len(AUDIT_COLUMNS))}, ?)",
                    [(program_id, run_date, *row, at) for row in changes.select(AUDIT_COLUMNS).iter_rows()])
                conn.execute("DELETE FROM playlist_members WHERE program_id = ?", (program_id,))
                conn.execute(f"INSERT INTO playlist_members ({', '.join(('program_id', *_MEMBERS))}) "
                             f"SELECT ?, * FROM ({_REPLAY.format(before='')})", (program_id, program_id))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return changes.height

    def audit(self, program_id: str) -> pl.DataFrame:
        with closing(self._connect()) as conn:
            rows = conn.execute(f"SELECT {', '.join(AUDIT_SCHEMA)} FROM playlist_audit WHERE program_id = ? "
                                "ORDER BY run_date, id", (program_id,)).fetchall()
            return pl.DataFrame(rows, orient="row", schema=AUDIT_SCHEMA)
