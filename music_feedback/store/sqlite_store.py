"""Embedded SQLite adapter of the candidate store, for local runs and tests.

Layout: one table per (program_id, batch_date), listed in `candidate_batches`; a read unions
only the program's batches that have not wholly expired (SQLite pushes the WHERE into each
arm, so each table's indexes serve it), so the number of live batches, not history, bounds it. Why not one big table: 250K random
inserts into four growing B-trees plus a 250K-row DELETE on replace took 3-7 s; building
a fresh table and indexing it afterwards takes ~1.5 s, and replace/expiry become DROP TABLE.
"""
from __future__ import annotations

import itertools
import os
import sqlite3
from contextlib import closing, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Callable, Iterable, Iterator

import polars as pl
from pydantic import Field

from music_feedback.store import sqlite_serving
from music_feedback.store.base import (
    CANDIDATE_COLUMNS,
    CANDIDATE_SCHEMA,
    DEFAULT_STATUS,
    STATUSES,
    CandidateStore,
    ChannelQuery,
    ROW_KEY,
    PageKey,
    epoch_now,
    validate_candidates,
)

_SQL_TYPES = {pl.Int64: "INTEGER", pl.Float64: "REAL", pl.Utf8: "TEXT"}
_NOT_NULL = {"listener_id", "track_id", "channel", "score", "expires_at"}
_COLS = ", ".join(CANDIDATE_COLUMNS)
# Columns no read filters, orders or indexes by, which the row's serving JSON (`item`) holds anyway: a
# batch written since this layout (candidate_batches.narrow) has no column for them, and reads take them
# from `item`. The insert binds six values a row fewer and writes ~10% less (a day stored in 1.1-1.3 s
# instead of 1.4-1.7); a read pays ~2 us a row, and channel pages take the JSON whole as before.
FROM_ITEM = ("propensity_score", "affinity_score", "genre", "time_zone", "track_name", "artist_id")
# Columns a batch usually holds one value of (the models that scored it, its TTL): stored once, as a constant
# of its table like batch_date, when they are; ~20% of a row's bytes, so a faster write and a smaller file.
BATCH_CONSTANTS = ("propensity_model_version", "affinity_model_version", "expires_at")


def _sql_literal(value) -> str:
    return _lit(value) if isinstance(value, str) else repr(value)


def _table_ddl(t: str, batch_date: str, constants: dict) -> str:
    """batch_date, and each column in `constants`, is a VIRTUAL generated constant of the table. FROM_ITEM
    columns are left out, not generated from `item`: SQLite computes generated columns on every insert."""
    defs = [f"{c} {_SQL_TYPES[k]} GENERATED ALWAYS AS ({_sql_literal(constants[c])}) VIRTUAL" if c in constants
            else f"{c} {_SQL_TYPES[k]}{' NOT NULL' * (c in _NOT_NULL)}" for c, k in CANDIDATE_SCHEMA.items()
            if c not in FROM_ITEM]
    return (f"CREATE TABLE {t} ({', '.join(defs)}, item TEXT, status TEXT NOT NULL DEFAULT '{DEFAULT_STATUS}', "
            f"batch_date TEXT GENERATED ALWAYS AS ({_lit(batch_date)}) VIRTUAL)")


def _constants(df: pl.DataFrame) -> dict:
    """The BATCH_CONSTANTS columns that hold a single non-null value in `df`."""
    return {c: df[c][0] for c in BATCH_CONSTANTS if df[c].null_count() == 0 and df[c].n_unique() == 1}


# Built after the insert (a sort, much cheaper than per-row index maintenance). Within a batch
# table program_id and batch_date are constant, so these are the brief's indexes minus those columns;
# the unique key (listener_id, ...) also serves the by-listener pattern.
_INDEX_DDL = (
    "CREATE UNIQUE INDEX {t}_key ON {t} (listener_id, track_id, channel)",
    # The whole page order, so each arm of a page's UNION ALL comes out of the index already in order (a
    # per-arm sort of equal scores by listener, track and date cost ~0.7 ms of a 1,000-row page).
    "CREATE INDEX {t}_channel ON {t} (channel, score DESC, listener_id, track_id, batch_date)",
    # (track_id, ...) serves the by-track pattern; the rest lets the per-track cap read a track's
    # ranking from the index alone instead of fetching and sorting all its rows.
    "CREATE INDEX {t}_track ON {t} (track_id, channel, score DESC, listener_id)",
)
_EMPTY = "SELECT NULL AS program_id, NULL AS batch_date, %s, NULL AS status WHERE 0" % ", ".join(
    f"NULL AS {c}" for c in CANDIDATE_COLUMNS
)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS candidate_batches (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  program_id TEXT NOT NULL,
  batch_date TEXT NOT NULL,
  min_expires_at INTEGER NOT NULL,
  max_expires_at INTEGER NOT NULL,
  plain INTEGER NOT NULL DEFAULT 0,  -- how pages render its rows: sqlite_serving.GENERAL, PLAIN or RENDERED
  dated INTEGER NOT NULL DEFAULT 0,  -- 1: its table has batch_date, last in its channel index
  narrow INTEGER NOT NULL DEFAULT 0,  -- 1: its table has no FROM_ITEM columns; reads take them from item
  UNIQUE (program_id, batch_date)
);
DROP VIEW IF EXISTS candidates;
"""
# A file from before these columns: its batches keep 0 (read the general way) until stored again.
_ADDED = ("plain", "dated", "narrow")



class _NotConstant(Exception):
    """A later chunk holds another value of a column the first chunk's table stores as a constant."""


INSERT_SLICE = 20_000
# A new file's page size. A day's batch writes ~120 MB (each page twice: the WAL, then the checkpoint);
# 8 KiB pages store it ~0.3 s faster than SQLite's 4 KiB. A status update then rewrites an 8 KiB page;
# 16 KiB pages were no faster. An existing file keeps its size (changing it takes a VACUUM).
PAGE_BYTES = 8192
_READY: set[tuple[int, str]] = set()  # (process, path) whose schema is known to exist


def _lit(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _add_columns(conn: sqlite3.Connection) -> None:
    have = {r[1] for r in conn.execute("PRAGMA table_info(candidate_batches)")}
    for col in _ADDED:
        if col not in have:
            try:
                conn.execute(f"ALTER TABLE candidate_batches ADD COLUMN {col} INTEGER NOT NULL DEFAULT 0")
            except sqlite3.OperationalError as exc:  # another process added it meanwhile
                if "duplicate column" not in str(exc):
                    raise


# A narrow batch's FROM_ITEM columns, read from the row's JSON (`item` lacks its closing brace).
_NARROW_COLS = ", ".join(f"json_extract(item || '}}', '$.{c}') AS {c}" if c in FROM_ITEM else c
                         for c in CANDIDATE_COLUMNS)


def _live_batches(conn: sqlite3.Connection, program_id: str, ts: float) -> str:
    """A UNION ALL over the program's batches with a row still unexpired at `ts`."""
    arms = [
        f"SELECT {_lit(p)} AS program_id, {_lit(d)} AS batch_date, {_NARROW_COLS if n else _COLS}, status "
        f"FROM cand_{i}"
        for i, p, d, n in conn.execute(
            "SELECT id, program_id, batch_date, narrow FROM candidate_batches "
            "WHERE program_id = ? AND max_expires_at > ? ORDER BY id", (program_id, ts))
    ]
    return "(" + (" UNION ALL ".join(arms) or _EMPTY) + ")"


class SQLiteCandidateStore(CandidateStore):
    """One SQLite file in WAL mode, so channel readers don't block the daily writer.
    A connection per call keeps the resource picklable and safe across Dagster processes."""

    path: str = Field(description="SQLite file of the candidates (MUSIC_FEEDBACK_HOME/candidates.sqlite).")
    lock_wait_s: float = Field(default=30.0, description=(
        "Seconds a write waits for another writer's lock; the service passes a short bound."))

    @property
    def reads_block(self) -> bool:
        return False

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: transactions are explicit (see _write).
        with closing(sqlite3.connect(self.path, isolation_level=None, timeout=self.lock_wait_s)) as conn:
            conn.execute("PRAGMA synchronous=NORMAL")
            # Index builds sort in memory up to the cache, beyond it on two threads (merging sorted runs): a
            # 20x day's three indexes took 11.8 s at 64 MiB on two threads, 14.9 s at 128 MiB on one, in the
            # same memory. A 1x day sorts in memory either way.
            conn.execute("PRAGMA cache_size=-65536")
            conn.execute("PRAGMA threads=2")
            if (os.getpid(), self.path) not in _READY:  # once per process: the feedback API writes per request
                conn.execute(f"PRAGMA page_size={PAGE_BYTES}")  # takes effect only in a new, empty file
                conn.execute("PRAGMA journal_mode=WAL")
                conn.executescript(_SCHEMA)
                _add_columns(conn)
                _READY.add((os.getpid(), self.path))
            yield conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction (DDL included, SQLite's DDL is transactional)."""
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    @contextmanager
    def _reader(self) -> Iterator[sqlite3.Connection]:
        """A read-only connection kept per thread (serving reads skip the connect and schema set-up, a few
        ms and a write lock), inside one read transaction: the batch list and the rows come from one
        snapshot, so a batch replaced meanwhile is never half seen."""
        conn = sqlite_serving.reader(self.path, self._connect)
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

    def _query(self, sql: str, params: tuple, program_id: str, ts: float) -> list[dict]:
        """`sql` reads FROM {candidates}: the program's live batches at `ts`."""
        with self._reader() as conn:
            cur = conn.execute(sql.format(candidates=_live_batches(conn, program_id, ts)), params)
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row)) for row in cur.fetchall()]

    @staticmethod
    def _drop(conn: sqlite3.Connection, batch_id: int) -> None:
        conn.execute(f"DROP TABLE cand_{batch_id}")
        conn.execute("DELETE FROM candidate_batches WHERE id = ?", (batch_id,))

    def put_batch(self, program_id: str, batch_date: str, candidates: pl.DataFrame) -> int:
        return self.put_batch_chunks(program_id, batch_date, lambda: [candidates])

    def put_batch_chunks(self, program_id: str, batch_date: str,
                         chunks: Callable[[], Iterable[pl.DataFrame]]) -> int:
        """One transaction inserting a chunk at a time into the day's new table: memory is a chunk's, not
        the day's. The BATCH_CONSTANTS are taken from the first chunk; a later chunk with another value of
        one rolls the write back and writes again without constants (the batch's chunks share them)."""
        try:
            return self._put_chunks(program_id, batch_date, chunks, constants=True)
        except _NotConstant:
            return self._put_chunks(program_id, batch_date, chunks, constants=False)

    def _put_chunks(self, program_id: str, batch_date: str, chunks: Callable[[], Iterable[pl.DataFrame]],
                    constants: bool) -> int:
        prepared = ((df, sqlite_serving.rendered(df)) for df in map(validate_candidates, chunks()))
        first = next(prepared, None)  # the first chunk (a one-chunk day: all of it) is rendered outside the lock
        written, parts, table, fixed, expires = 0, 0, None, {}, [None, None]
        with self._write() as conn:
            old = conn.execute(
                "SELECT id FROM candidate_batches WHERE program_id = ? AND batch_date = ?",
                (program_id, batch_date),
            ).fetchone()
            if old:  # keep its table until the new one has taken over the delivery statuses
                conn.execute("DELETE FROM candidate_batches WHERE id = ?", (old[0],))
            for df, items in itertools.chain([first] if first else [], prepared):
                if not df.height:
                    continue
                if table is None:
                    fixed = _constants(df) if constants else {}
                    bid = conn.execute(
                        "INSERT INTO candidate_batches (program_id, batch_date, min_expires_at, max_expires_at, "
                        "plain, dated, narrow) VALUES (?, ?, ?, ?, ?, 1, ?)",
                        (program_id, batch_date, df["expires_at"].min(), df["expires_at"].max(),
                         sqlite_serving.RENDERED, int(bool(FROM_ITEM))),
                    ).lastrowid
                    table = f"cand_{bid}"
                    conn.execute(_table_ddl(table, batch_date, fixed))
                    stored = [c for c in CANDIDATE_COLUMNS if c not in fixed and c not in FROM_ITEM] + ["item"]
                    insert = (f"INSERT INTO {table} ({', '.join(stored)}) "
                              f"VALUES ({', '.join('?' * len(stored))})")
                elif any(df[c].null_count() or (df[c] != v).any() for c, v in fixed.items()):
                    raise _NotConstant()
                lo, hi = df["expires_at"].min(), df["expires_at"].max()
                expires = [lo if expires[0] is None else min(expires[0], lo),
                           hi if expires[1] is None else max(expires[1], hi)]
                # Python values for a slice at a time (all 250K rows at once took ~250 MB), a column at a
                # time: zipping the columns' lists makes the row tuples faster than `rows()` (0.36 s against 0.45).
                for part in df.with_columns(items).select(stored).iter_slices(INSERT_SLICE):
                    conn.executemany(insert, zip(*(part[c].to_list() for c in stored)))
                written += df.height
                parts += 1
            if table is not None:
                if parts > 1:  # more than one chunk: the day's range of expiries
                    conn.execute("UPDATE candidate_batches SET min_expires_at = ?, max_expires_at = ? "
                                 "WHERE id = ?", (expires[0], expires[1], bid))
                for ddl in _INDEX_DDL:
                    try:
                        conn.execute(ddl.format(t=table))
                    except sqlite3.IntegrityError:  # within a chunk, validate_candidates has caught it
                        raise ValueError(f"candidates frame has duplicate {ROW_KEY} rows") from None
                delivered = old and conn.execute(
                    f"SELECT 1 FROM cand_{old[0]} WHERE status <> ? LIMIT 1", (DEFAULT_STATUS,)).fetchone()
                if delivered:  # a re-run must not bring back candidates already sent or answered
                    conn.execute(
                        f"UPDATE {table} SET status = o.status FROM cand_{old[0]} AS o WHERE o.status <> ? "
                        f"AND o.listener_id = {table}.listener_id AND o.track_id = {table}.track_id "
                        f"AND o.channel = {table}.channel", (DEFAULT_STATUS,))
            if old:
                conn.execute(f"DROP TABLE cand_{old[0]}")
        return written

    def for_listener(self, program_id: str, listener_id: int, now: datetime | None = None) -> list[dict]:
        return self._query(
            "SELECT * FROM {candidates} WHERE program_id = ? AND listener_id = ? AND expires_at > ? "
            "ORDER BY batch_date DESC, score DESC, track_id, channel",
            (program_id, listener_id, epoch_now(now)), program_id, epoch_now(now),
        )

    def for_channel(
        self,
        program_id: str,
        channel: str,
        min_score: float = 0.0,
        limit: int = 100_000,
        marketplace: str | None = None,
        max_per_track: int | None = None,
        now: datetime | None = None,
    ) -> list[dict]:
        where = "program_id = ? AND channel = ? AND score >= ? AND expires_at > ?"
        params: list = [program_id, channel, min_score, epoch_now(now)]
        if marketplace is not None:
            where += " AND marketplace = ?"
            params.append(marketplace)
        order = "score DESC, listener_id, track_id"
        if max_per_track is None:
            sql = f"SELECT * FROM {{candidates}} WHERE {where} ORDER BY {order} LIMIT ?"
        else:
            rank = f"ROW_NUMBER() OVER (PARTITION BY track_id ORDER BY {order}) AS _rank"
            sql = (
                f"SELECT * FROM (SELECT *, {rank} FROM {{candidates}} WHERE {where}) "
                f"WHERE _rank <= ? ORDER BY {order} LIMIT ?"
            )
            params.append(max_per_track)
        rows = self._query(sql, (*params, limit), program_id, params[3])
        for r in rows:
            r.pop("_rank", None)
        return rows

    def for_track(
        self, program_id: str, track_id: int, batch_date: str, now: datetime | None = None
    ) -> list[dict]:
        return self._query(
            "SELECT * FROM {candidates} WHERE program_id = ? AND track_id = ? AND batch_date = ? "
            "AND expires_at > ? ORDER BY score DESC, listener_id, channel",
            (program_id, track_id, batch_date, epoch_now(now)), program_id, epoch_now(now),
        )

    def count(self, program_id: str, batch_date: str | None = None, now: datetime | None = None) -> int:
        """Per live batch: a wholly unexpired one is counted from its smallest index (~1 ms for 250K rows,
        against ~75 ms testing each row's expiry); only a partly expired one tests expires_at."""
        ts = epoch_now(now)
        with self._reader() as conn:
            batches = conn.execute("SELECT id, min_expires_at FROM candidate_batches WHERE program_id = ? AND "
                                   "max_expires_at > ? AND (? IS NULL OR batch_date = ?)",
                                   (program_id, ts, batch_date, batch_date)).fetchall()
            return sum(conn.execute(f"SELECT COUNT(*) FROM cand_{bid}" if lo > ts else
                                    f"SELECT COUNT(*) FROM cand_{bid} WHERE expires_at > ?",
                                    () if lo > ts else (ts,)).fetchone()[0] for bid, lo in batches)

    @staticmethod
    def _live(conn: sqlite3.Connection, program_id: str, ts: float, batch_date: str | None = None
              ) -> list[sqlite_serving.Batch]:
        rows = conn.execute("SELECT id, batch_date, plain, dated FROM candidate_batches WHERE program_id = ? "
                            "AND max_expires_at > ? ORDER BY id", (program_id, ts)).fetchall()
        return [(i, d, p, bool(k)) for i, d, p, k in rows if batch_date in (None, d)]

    def track_cutoffs(self, query: ChannelQuery, now: datetime | None = None) -> dict[int, PageKey]:
        ts = epoch_now(now)
        with self._reader() as conn:
            return sqlite_serving.cutoffs(conn, self.path, self._live(conn, query.program_id, ts, query.batch_date), query, ts)

    def channel_page(self, query: ChannelQuery, after: PageKey | None, size: int,
                     cutoffs: dict[int, PageKey], now: datetime | None = None) -> list[dict]:
        ts = epoch_now(now)
        with self._reader() as conn:
            return sqlite_serving.page(conn, self._live(conn, query.program_id, ts, query.batch_date), query, after, size, cutoffs, ts)

    def channel_page_json(self, query: ChannelQuery, after: PageKey | None, size: int,
                          cutoffs: dict[int, PageKey], now: datetime | None = None) -> tuple[list[bytes], PageKey | None]:
        ts = epoch_now(now)
        with self._reader() as conn:
            return sqlite_serving.page_json(conn, self._live(conn, query.program_id, ts, query.batch_date), query, after, size,
                                            cutoffs, ts)

    def set_status(self, program_id: str, batch_date: str, keys: Iterable[tuple[int, int, str]], status: str,
                   expected: str | None = None) -> int:
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}; one of {STATUSES}")
        with self._write() as conn:
            found = conn.execute("SELECT id FROM candidate_batches WHERE program_id = ? AND batch_date = ?",
                                 (program_id, batch_date)).fetchone()
            if not found:
                return 0
            sql = f"UPDATE cand_{found[0]} SET status = ? WHERE listener_id = ? AND track_id = ? AND channel = ?"
            if expected is not None:
                sql += " AND status = ?"
            tail = () if expected is None else (expected,)
            return sum(conn.execute(sql, (status, lid, tid, ch, *tail)).rowcount for lid, tid, ch in keys)

    def ping(self) -> None:
        with self._connect() as conn:
            conn.execute("SELECT COUNT(*) FROM candidate_batches").fetchone()

    def purge_expired(self, now: datetime | None = None) -> int:
        """Whole expired batches are dropped; partly expired ones get a DELETE."""
        ts, deleted = epoch_now(now), 0
        with self._write() as conn:
            batches = conn.execute(
                "SELECT id, max_expires_at FROM candidate_batches WHERE min_expires_at <= ?", (ts,)
            ).fetchall()
            for bid, max_exp in batches:
                t = f"cand_{bid}"
                if max_exp <= ts:
                    deleted += conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                    self._drop(conn, bid)
                else:
                    deleted += conn.execute(f"DELETE FROM {t} WHERE expires_at <= ?", (ts,)).rowcount
                    conn.execute(
                        "UPDATE candidate_batches SET min_expires_at = ? WHERE id = ?",
                        (conn.execute(f"SELECT MIN(expires_at) FROM {t}").fetchone()[0], bid),
                    )
        return deleted
