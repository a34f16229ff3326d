"""Embedded SQLite adapter of the feedback store (WAL; one connection per thread, reused, because the
feedback API writes on every request and a connect with schema set-up costs more than the write)."""
from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

import polars as pl
from pydantic import Field

from music_feedback.feedback.port import (CONTACTED, Cap, LEDGER_SCHEMA, FeedbackStore, LedgerKey, OptedOutError,
                                          Submission, SubmissionConflict, SubmitResult, check_planned,
                                          check_resolved, check_settled)

_SCHEMA = (Path(__file__).with_name("sqlite_schema.sql")).read_text()
_SUBMISSIONS_TABLE = re.search(r"CREATE TABLE IF NOT EXISTS submissions \(.*?\) WITHOUT ROWID", _SCHEMA,
                               re.S).group()
_LEDGER_COLS = tuple(LEDGER_SCHEMA)
_FEEDBACK_COLS = ("program_id", "listener_id", "track_id", "rating", "comment", "tags", "channel", "batch_date",
                  "submission_id", "delivered_at", "first_submitted_at", "submitted_at", "revisions")


def _fingerprint(sub: Submission) -> str:
    return hashlib.sha256(json.dumps([sub.program_id, sub.listener_id, sub.track_id, sub.rating, sub.comment,
                                      sorted(sub.tags)]).encode()).hexdigest()


def _scope_submissions(conn: sqlite3.Connection) -> None:
    """Migrate in place a store whose submissions were keyed by the submission id alone (one id for every
    listener): the same rows, keyed by (program, listener, submission id). Checked again under the write
    lock, so of several processes opening the store at once one moves the rows and the others see it done."""
    def keyed_by_id_alone() -> bool:
        return [r[1] for r in conn.execute("PRAGMA table_info(submissions)") if r[5]] == ["submission_id"]

    if not keyed_by_id_alone():
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        if keyed_by_id_alone():
            conn.execute("ALTER TABLE submissions RENAME TO submissions_by_id")
            conn.execute(_SUBMISSIONS_TABLE)  # not executescript: it would commit the transaction first
            conn.execute("INSERT INTO submissions (program_id, listener_id, submission_id, track_id, fingerprint) "
                         "SELECT program_id, listener_id, submission_id, track_id, fingerprint FROM submissions_by_id")
            conn.execute("DROP TABLE submissions_by_id")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


class SQLiteFeedbackStore(FeedbackStore):
    path: str = Field(description="SQLite file of the ledger, answers and suppressions "
                                  "(MUSIC_FEEDBACK_HOME/feedback.sqlite).")
    # How long a write waits for another connection's write lock before "database is locked": the batch
    # jobs wait long; the service passes its own short bound and answers 503 past it.
    lock_wait_s: float = Field(default=30.0, description=(
        "Seconds a write waits for another connection's write lock; the service passes a short bound."))

    def _conn(self) -> sqlite3.Connection:
        with _LOCK:  # per process and path: a forked child must not share its parent's connection
            local = _LOCALS.setdefault((os.getpid(), self.path), threading.local())
        conn = getattr(local, "conn", None)
        if conn is not None and _inode(self.path) != local.inode:  # the file was deleted or replaced since
            conn.close()
            conn = None
        if conn is None:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=self.lock_wait_s,
                                   check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(_SCHEMA)
            _scope_submissions(conn)
            local.conn, local.inode = conn, _inode(self.path)
        return conn

    def _begin(self, conn: sqlite3.Connection) -> None:
        """BEGIN IMMEDIATE, waiting at most lock_wait_s for another connection's write lock, trying again
        every 2 ms. SQLite's own busy handler sleeps in steps growing to 100 ms: a waiter would start up to
        100 ms after the lock is free, and would never get a lock that a busy writer frees for less."""
        deadline = time.monotonic() + self.lock_wait_s
        conn.execute("PRAGMA busy_timeout = 0")
        try:
            while True:
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    return
                except sqlite3.OperationalError as exc:
                    if "locked" not in str(exc) or time.monotonic() >= deadline:
                        raise
                time.sleep(_LOCK_POLL_S)
        finally:  # reads on this shared connection keep the bounded busy handler
            conn.execute(f"PRAGMA busy_timeout = {int(self.lock_wait_s * 1000)}")

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        self._begin(conn)
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _rows(self, sql: str, params: tuple = ()) -> list[dict]:
        cur = self._conn().execute(sql, params)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]

    # --- the delivery ledger -------------------------------------------------------------------
    def plan(self, program_id: str, rows: pl.DataFrame) -> int:
        df = check_planned(rows)
        sql = (f"INSERT OR IGNORE INTO delivery_ledger (program_id, {', '.join(_LEDGER_COLS)}, updated_at) "
               f"VALUES (?, {', '.join('?' * len(_LEDGER_COLS))}, unixepoch('subsec'))")
        with self._tx() as conn:
            before = conn.total_changes
            conn.executemany(sql, ((program_id, *r) for r in df.iter_rows()))
            return conn.total_changes - before

    def due(self, program_id: str, batch_date: str, channel: str, marketplace: str | None = None
            ) -> pl.DataFrame:
        sql = (f"SELECT {', '.join(_LEDGER_COLS)}, attempts, message_id FROM delivery_ledger "
               "WHERE program_id = ? AND batch_date = ? AND channel = ? AND state IN ('pending', 'sending')")
        params: list = [program_id, batch_date, channel]
        if marketplace is not None:
            sql += " AND marketplace = ?"
            params.append(marketplace)
        rows = self._conn().execute(sql + " ORDER BY campaign, score DESC, listener_id, track_id", params).fetchall()
        schema = {**LEDGER_SCHEMA, "attempts": pl.Int64, "message_id": pl.Utf8}
        return pl.DataFrame(rows, schema=schema, orient="row")

    def _update(self, sql: str, params: Iterable[tuple]) -> int:
        with self._tx() as conn:
            before = conn.total_changes
            conn.executemany(sql, params)
            return conn.total_changes - before

    _KEY = "program_id = ? AND batch_date = ? AND channel = ? AND listener_id = ? AND track_id = ?"

    def claim(self, program_id: str, batch_date: str, channel: str, keys: Iterable[LedgerKey], now: float
              ) -> list[LedgerKey]:
        keys, claimed = list(keys), []
        with self._tx() as conn:
            for i in range(0, len(keys), 400):  # one statement per 400 keys (SQLite's parameter limit)
                part = keys[i:i + 400]
                rows = conn.execute(
                    "UPDATE delivery_ledger SET state = 'sending', attempts = attempts + 1, updated_at = ?, "
                    "contacted_at = ? WHERE program_id = ? AND batch_date = ? AND channel = ? AND state = 'pending' "
                    f"AND (listener_id, track_id) IN (VALUES {', '.join(['(?, ?)'] * len(part))}) "
                    "RETURNING listener_id, track_id",
                    (now, now, program_id, batch_date, channel, *(v for k in part for v in k))).fetchall()
                claimed += [tuple(r) for r in rows]
        order = {k: n for n, k in enumerate(keys)}
        return sorted(claimed, key=order.__getitem__)

    def settle(self, program_id: str, batch_date: str, channel: str,
               outcomes: Iterable[tuple[LedgerKey, str, str, str | None]], now: float) -> int:
        outcomes = check_settled(outcomes)
        # A retry goes back to pending and no longer counts as a contact; an unknown one still does.
        return self._update(
            "UPDATE delivery_ledger SET state = ?, reason = ?, message_id = COALESCE(?, message_id), updated_at = ?, "
            "contacted_at = CASE WHEN ? = 'sent' THEN ? WHEN ? = 'unknown' THEN contacted_at ELSE NULL END "
            f"WHERE {self._KEY} AND state = 'sending'",
            ((state, reason or None, mid, now, state, now, state, program_id, batch_date, channel, lid, tid)
             for (lid, tid), state, reason, mid in outcomes))

    def unknown(self, program_id: str, batch_date: str, channel: str) -> pl.DataFrame:
        rows = self._conn().execute(
            "SELECT listener_id, track_id, marketplace, message_id, updated_at FROM delivery_ledger "
            "WHERE program_id = ? AND batch_date = ? AND channel = ? AND state = 'unknown' "
            "ORDER BY listener_id, track_id", (program_id, batch_date, channel)).fetchall()
        return pl.DataFrame(rows, schema={"listener_id": pl.Int64, "track_id": pl.Int64, "marketplace": pl.Utf8,
                                          "message_id": pl.Utf8, "updated_at": pl.Float64}, orient="row")

    def resolve(self, program_id: str, batch_date: str, channel: str,
                outcomes: Iterable[tuple[LedgerKey, str, str]], now: float) -> int:
        outcomes = check_resolved(outcomes)
        # Taken: it stays the contact it was, at the time it was claimed. Not taken: due again, no contact.
        return self._update(
            "UPDATE delivery_ledger SET state = ?, reason = ?, updated_at = ?, "
            "contacted_at = CASE WHEN ? = 'sent' THEN contacted_at ELSE NULL END "
            f"WHERE {self._KEY} AND state = 'unknown'",
            ((state, reason or None, now, state, program_id, batch_date, channel, lid, tid)
             for (lid, tid), state, reason in outcomes))

    def expire(self, program_id: str, batch_date: str, channel: str, keys: Iterable[LedgerKey], reason: str,
               now: float, state: str = "expired") -> int:
        return self._update(
            f"UPDATE delivery_ledger SET state = ?, reason = ?, updated_at = ? WHERE {self._KEY} "
            "AND state IN ('pending', 'sending')",
            ((state, reason, now, program_id, batch_date, channel, lid, tid) for lid, tid in keys))

    def record_contact(self, program_id: str, batch_date: str, channel: str, row: dict, state: str,
                       now: float, cap: Cap | None = None) -> str | None:
        if state not in ("sent", "held_out"):
            raise ValueError(f"a contact is recorded as sent or held_out, not {state!r}")
        values = {**{c: row.get(c) for c in _LEDGER_COLS}, "batch_date": batch_date, "channel": channel,
                  "state": state}
        key = (program_id, batch_date, channel, row["listener_id"], row["track_id"])
        with self._tx() as conn:  # the write lock: the count and the insert see no other writer between
            if cap is not None and conn.execute(f"SELECT 1 FROM delivery_ledger WHERE {self._KEY}", key
                                                ).fetchone() is None:
                limit, since, until = cap
                if self._count_contacts(conn, program_id, row["listener_id"], since, until) >= limit:
                    return None
            conn.execute(
                f"INSERT OR IGNORE INTO delivery_ledger (program_id, {', '.join(_LEDGER_COLS)}, attempts, "
                f"updated_at, contacted_at) VALUES (?, {', '.join('?' * len(_LEDGER_COLS))}, 1, ?, ?)",
                (program_id, *values.values(), now, now if state == "sent" else None))
            return conn.execute(f"SELECT state FROM delivery_ledger WHERE {self._KEY}", key).fetchone()[0]

    def contacts(self, program_id: str, since: float, until: float) -> pl.DataFrame:
        rows = self._conn().execute(
            "SELECT listener_id, COUNT(*) FROM delivery_ledger WHERE program_id = ? AND contacted_at >= ? "
            f"AND contacted_at < ? AND state IN {CONTACTED} GROUP BY listener_id", (program_id, since, until)
        ).fetchall()
        return pl.DataFrame(rows, schema={"listener_id": pl.Int64, "requests": pl.Int64}, orient="row")

    def contacts_of(self, program_id: str, listener_id: int, since: float, until: float) -> int:
        return self._count_contacts(self._conn(), program_id, listener_id, since, until)

    def contacts_among(self, program_id: str, listener_ids: Iterable[int], since: float, until: float
                       ) -> dict[int, int]:
        ids = sorted(set(int(i) for i in listener_ids))
        if not ids:
            return {}
        rows = self._conn().execute(
            f"SELECT listener_id, COUNT(*) FROM delivery_ledger INDEXED BY ledger_listener WHERE listener_id IN "
            f"({', '.join('?' * len(ids))}) AND program_id = ? AND contacted_at >= ? AND contacted_at < ? "
            f"AND state IN {CONTACTED} GROUP BY listener_id", (*ids, program_id, since, until)).fetchall()
        return {**dict.fromkeys(ids, 0), **dict(rows)}

    @staticmethod
    def _count_contacts(conn: sqlite3.Connection, program_id: str, listener_id: int, since: float,
                        until: float) -> int:
        return conn.execute(
            "SELECT COUNT(*) FROM delivery_ledger INDEXED BY ledger_listener WHERE listener_id = ? AND program_id = ? "
            f"AND contacted_at >= ? AND contacted_at < ? AND state IN {CONTACTED}",
            (listener_id, program_id, since, until)).fetchone()[0]

    def ledger_counts(self, program_id: str, batch_date: str | None = None, channel: str | None = None
                      ) -> dict[str, int]:
        sql, params = "SELECT state, COUNT(*) FROM delivery_ledger WHERE program_id = ?", [program_id]
        for col, value in (("batch_date", batch_date), ("channel", channel)):
            if value is not None:
                sql += f" AND {col} = ?"
                params.append(value)
        return dict(self._conn().execute(sql + " GROUP BY state ORDER BY state", params).fetchall())

    def ledger_frame(self, program_id: str, batch_date: str) -> pl.DataFrame:
        rows = self._conn().execute(
            "SELECT listener_id, track_id, channel, marketplace, genre, state, score FROM delivery_ledger "
            "WHERE program_id = ? AND batch_date = ?", (program_id, batch_date)).fetchall()
        return pl.DataFrame(rows, orient="row", schema={
            "listener_id": pl.Int64, "track_id": pl.Int64, "channel": pl.Utf8, "marketplace": pl.Utf8,
            "genre": pl.Utf8, "state": pl.Utf8, "score": pl.Float64})

    def ledger_row(self, program_id: str, batch_date: str, listener_id: int, track_id: int, channel: str
                   ) -> dict | None:
        rows = self._rows(f"SELECT * FROM delivery_ledger WHERE {self._KEY}",
                          (program_id, batch_date, channel, listener_id, track_id))
        return rows[0] if rows else None

    # --- answers -------------------------------------------------------------------------------
    def submit(self, sub: Submission) -> SubmitResult:
        fp = _fingerprint(sub)
        with self._tx() as conn:
            if conn.execute("SELECT 1 FROM suppressions WHERE listener_id = ?", (sub.listener_id,)).fetchone():
                raise OptedOutError(f"listener {sub.listener_id} has opted out; no feedback is stored")
            seen = conn.execute("SELECT fingerprint FROM submissions WHERE program_id = ? AND listener_id = ? "
                                "AND submission_id = ?",
                                (sub.program_id, sub.listener_id, sub.submission_id)).fetchone()
            if seen:
                if seen[0] != fp:
                    raise SubmissionConflict(f"submission id {sub.submission_id!r} was already used for a "
                                             "different answer: send a new id for a new answer")
                return SubmitResult("unchanged", self._feedback(conn, sub.program_id, sub.listener_id, sub.track_id))
            conn.execute("INSERT INTO submissions (program_id, listener_id, submission_id, track_id, fingerprint) "
                         "VALUES (?, ?, ?, ?, ?)",
                         (sub.program_id, sub.listener_id, sub.submission_id, sub.track_id, fp))
            old = self._feedback(conn, sub.program_id, sub.listener_id, sub.track_id)
            delivered = conn.execute(
                "SELECT contacted_at FROM delivery_ledger WHERE program_id = ? AND batch_date = ? AND channel = ? "
                "AND listener_id = ? AND track_id = ?",
                (sub.program_id, sub.batch_date, sub.channel, sub.listener_id, sub.track_id)).fetchone()
            self._upsert(conn, sub, old, delivered[0] if delivered else None)
            self._count(conn, sub, old)
            self._close_requests(conn, sub)
            new = self._feedback(conn, sub.program_id, sub.listener_id, sub.track_id)
            conn.execute("INSERT INTO event_outbox (program_id, kind, detail, created_at) VALUES (?, ?, ?, ?)",
                         (sub.program_id, "feedback.updated" if old else "feedback.submitted",
                          json.dumps(new), sub.submitted_at))
            return SubmitResult("updated" if old else "created", new)

    @staticmethod
    def _upsert(conn: sqlite3.Connection, sub: Submission, old: dict | None, delivered_at: float | None) -> None:
        tags = json.dumps(sorted(sub.tags))
        if old is None:
            conn.execute(f"INSERT INTO feedback ({', '.join(_FEEDBACK_COLS)}) VALUES ({', '.join('?' * 13)})",
                         (sub.program_id, sub.listener_id, sub.track_id, sub.rating, sub.comment, tags, sub.channel,
                          sub.batch_date, sub.submission_id, delivered_at, sub.submitted_at, sub.submitted_at, 1))
        else:
            conn.execute("UPDATE feedback SET rating = ?, comment = ?, tags = ?, channel = ?, submission_id = ?, "
                         "submitted_at = ?, revisions = revisions + 1 "
                         "WHERE program_id = ? AND listener_id = ? AND track_id = ?",
                         (sub.rating, sub.comment, tags, sub.channel, sub.submission_id, sub.submitted_at,
                          sub.program_id, sub.listener_id, sub.track_id))

    @staticmethod
    def _count(conn: sqlite3.Connection, sub: Submission, old: dict | None) -> None:
        """One vote per listener per track: a changed answer moves the vote, it does not add one."""
        up = (sub.rating > 0) - (old is not None and old["rating"] > 0)
        down = (sub.rating < 0) - (old is not None and old["rating"] < 0)
        conn.execute(
            "INSERT INTO track_metrics VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (program_id, track_id) DO UPDATE SET "
            "thumbs_up = thumbs_up + excluded.thumbs_up, thumbs_down = thumbs_down + excluded.thumbs_down, "
            "responses = responses + excluded.responses, updated_at = excluded.updated_at",
            (sub.program_id, sub.track_id, up, down, int(old is None), sub.submitted_at))

    @staticmethod
    def _close_requests(conn: sqlite3.Connection, sub: Submission) -> None:
        """The answered request is done; the pair's requests still pending anywhere are cancelled."""
        conn.execute("UPDATE delivery_ledger SET answered_at = COALESCE(answered_at, ?), updated_at = ? "
                     "WHERE program_id = ? AND listener_id = ? AND track_id = ? AND channel = ? AND batch_date = ?",
                     (sub.submitted_at, sub.submitted_at, sub.program_id, sub.listener_id, sub.track_id,
                      sub.channel, sub.batch_date))
        # INDEXED BY: without statistics the planner prefers the due index and scans a program's ledger.
        conn.execute("UPDATE delivery_ledger INDEXED BY ledger_listener SET state = 'cancelled', "
                     "reason = 'answered on ' || ?, updated_at = ? WHERE program_id = ? AND listener_id = ? AND track_id = ? AND state = 'pending'",
                     (sub.channel, sub.submitted_at, sub.program_id, sub.listener_id, sub.track_id))

    def _feedback(self, conn: sqlite3.Connection, program_id: str, listener_id: int, track_id: int) -> dict | None:
        cur = conn.execute("SELECT * FROM feedback WHERE program_id = ? AND listener_id = ? AND track_id = ?",
                           (program_id, listener_id, track_id))
        row = cur.fetchone()
        if row is None:
            return None
        out = dict(zip([d[0] for d in cur.description], row))
        out["tags"] = json.loads(out["tags"])
        return out

    def feedback(self, program_id: str, listener_id: int, track_id: int) -> dict | None:
        return self._feedback(self._conn(), program_id, listener_id, track_id)

    def answered_pairs(self, program_id: str, until: float) -> pl.DataFrame:
        rows = self._conn().execute("SELECT listener_id, track_id FROM feedback WHERE program_id = ? "
                                    "AND first_submitted_at < ?", (program_id, until)).fetchall()
        return pl.DataFrame(rows, schema={"listener_id": pl.Int64, "track_id": pl.Int64}, orient="row")

    def answers(self, program_id: str, until: float) -> pl.DataFrame:
        rows = self._conn().execute(
            "SELECT f.listener_id, f.track_id, f.rating, f.submitted_at, f.channel, f.batch_date, l.marketplace, "
            "l.genre, l.track_name FROM feedback f LEFT JOIN delivery_ledger l ON l.program_id = f.program_id "
            "AND l.batch_date = f.batch_date AND l.channel = f.channel AND l.listener_id = f.listener_id "
            "AND l.track_id = f.track_id WHERE f.program_id = ? AND f.submitted_at < ?", (program_id, until)).fetchall()
        return pl.DataFrame(rows, orient="row", schema={
            "listener_id": pl.Int64, "track_id": pl.Int64, "rating": pl.Int64, "submitted_at": pl.Float64,
            "channel": pl.Utf8, "batch_date": pl.Utf8, "marketplace": pl.Utf8, "genre": pl.Utf8, "track_name": pl.Utf8})

    def track_metrics(self, program_id: str, track_id: int) -> dict:
        rows = self._rows("SELECT thumbs_up, thumbs_down, responses FROM track_metrics WHERE program_id = ? "
                          "AND track_id = ?", (program_id, track_id))
        return rows[0] if rows else {"thumbs_up": 0, "thumbs_down": 0, "responses": 0}

    # --- opt-out and suppression ---------------------------------------------------------------
    def opt_out(self, listener_id: int, reason: str, now: float) -> bool:
        with self._tx() as conn:
            added = conn.execute("INSERT OR IGNORE INTO suppressions VALUES (?, ?, ?)",
                                 (listener_id, reason, now)).rowcount
            if added:  # nothing more goes out to them, in any program
                conn.execute("UPDATE delivery_ledger INDEXED BY ledger_listener SET state = 'cancelled', "
                             "reason = 'opted out', updated_at = ? WHERE listener_id = ? AND state = 'pending'",
                             (now, listener_id))
            return bool(added)

    def suppressed(self, listener_ids: Iterable[int] | None = None) -> set[int]:
        conn = self._conn()
        if listener_ids is None:
            return {r[0] for r in conn.execute("SELECT listener_id FROM suppressions")}
        ids = list(listener_ids)
        found: set[int] = set()
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            found.update(r[0] for r in conn.execute(
                f"SELECT listener_id FROM suppressions WHERE listener_id IN ({', '.join('?' * len(chunk))})", chunk))
        return found

    # --- events --------------------------------------------------------------------------------
    def record_event(self, program_id: str, kind: str, detail: dict, now: float) -> None:
        with self._tx() as conn:
            conn.execute("INSERT INTO event_outbox (program_id, kind, detail, created_at) VALUES (?, ?, ?, ?)",
                         (program_id, kind, json.dumps(detail), now))

    def unpublished_events(self, limit: int = 500) -> list[dict]:
        rows = self._rows("SELECT id, program_id, kind, detail, created_at FROM event_outbox "
                          "WHERE published_at IS NULL ORDER BY id LIMIT ?", (limit,))
        return [{**r, "detail": json.loads(r["detail"])} for r in rows]

    def mark_published(self, ids: Iterable[int], now: float) -> int:
        return self._update("UPDATE event_outbox SET published_at = ? WHERE id = ? AND published_at IS NULL",
                            ((now, i) for i in ids))

    def events_since(self, program_id: str, kind_prefix: str, after_id: int) -> tuple[int, int]:
        n, newest = self._conn().execute(
            "SELECT COUNT(*), MAX(id) FROM event_outbox WHERE program_id = ? AND id > ? AND kind LIKE ? || '%'",
            (program_id, after_id, kind_prefix)).fetchone()
        return n, newest or after_id

    def events(self, program_id: str, kind: str | None = None, since: float | None = None) -> list[dict]:
        sql, params = "SELECT id, program_id, kind, detail, created_at FROM event_outbox WHERE program_id = ?", [program_id]
        if kind is not None:
            sql += " AND kind = ?"
            params.append(kind)
        if since is not None:
            sql += " AND created_at >= ?"
            params.append(since)
        return [{**r, "detail": json.loads(r["detail"])} for r in self._rows(sql + " ORDER BY id", tuple(params))]


_LOCALS: dict[tuple[int, str], threading.local] = {}
_LOCK_POLL_S = 0.002  # a waiting writer's retry interval


def _inode(path: str) -> int | None:
    try:
        return os.stat(path).st_ino
    except FileNotFoundError:
        return None
_LOCK = threading.Lock()
