"""The SQLite adapter's serving reads: channel pages in keyset order and per-track cutoffs.

Each live batch table is one arm of a UNION ALL; every arm walks its (channel, score DESC) index
from the page position, and SQLite merges the ordered arms, so a page costs about `size` row reads
whatever the depth. Per-track row counts of a batch never grow (batches are replaced, not appended),
so they are counted once per process and only tracks that may pass the cap are looked at closely.
"""
from __future__ import annotations

import os
import sqlite3
import threading
from dataclasses import replace

from music_feedback.store.base import SERVING_COLUMNS, ChannelQuery, PageKey

_SELECT = ", ".join(SERVING_COLUMNS)
ORDER = "score DESC, listener_id, track_id, batch_date"
_counts: dict[tuple, dict[tuple[str, int], int]] = {}
_counts_lock = threading.Lock()
_cutoffs: dict[tuple, dict[int, PageKey]] = {}
_local = threading.local()


def reader(path: str, init) -> sqlite3.Connection:
    """This thread's read-only connection to `path` (`init()` creates the file and schema first)."""
    conns = _local.__dict__.setdefault("conns", {})
    key = (path, os.stat(path).st_ino if os.path.exists(path) else None)
    conn = conns.get(key)
    if conn is None:
        with init():
            pass
        key = (path, os.stat(path).st_ino)
        conn = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=True)
        conn.execute("PRAGMA query_only=ON")
        conn.execute("PRAGMA cache_size=-65536")
        conns[key] = conn
    return conn


def _lit(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _filters(q: ChannelQuery, params: dict) -> str:
    where = "channel = :channel AND score >= :min_score AND expires_at > :now"
    params.update(channel=q.channel, min_score=q.min_score)
    if q.marketplace is not None:
        where += " AND marketplace = :marketplace"
        params["marketplace"] = q.marketplace
    if q.status is not None:
        where += " AND status = :status"
        params["status"] = q.status
    return where


def _after(prefix: str, key: PageKey, date_sql: str, params: dict) -> str:
    """Rows after `key` in channel order (score desc, then listener, track, batch date asc)."""
    s, l, t, d = (f":{prefix}_{x}" for x in "sltd")
    params.update({f"{prefix}_s": key[0], f"{prefix}_l": key[1], f"{prefix}_t": key[2], f"{prefix}_d": key[3]})
    return f"(score < {s} OR (score = {s} AND (listener_id, track_id, {date_sql}) > ({l}, {t}, {d})))"


def _json_value(col: str) -> str:
    """A column as a JSON value; REALs with 17 significant digits (json_object's 15 would not round-trip)."""
    if col in _REALS:
        return f"CASE WHEN {col} IS NULL THEN NULL ELSE json(printf('%!.17g', {col})) END"
    return col


_REALS = {"score", "propensity_score", "affinity_score"}


def page_json(conn: sqlite3.Connection, batches: list[tuple[int, str]], q: ChannelQuery, after: PageKey | None,
              size: int, cutoffs: dict[int, PageKey], now: float) -> tuple[list[bytes], PageKey | None]:
    """`page`, with each row serialised by SQLite itself (no per-row Python objects)."""
    obj = "json_object(" + ", ".join(f"'{c}', {_json_value(c)}" for c in (*SERVING_COLUMNS, "batch_date", "status"))
    rows = page(conn, batches, q, after, size, cutoffs, now,
                select=f"{obj}) AS j, score, listener_id, track_id, batch_date", raw=True)
    if not rows:
        return [], None
    last = rows[-1]
    return [r[0].encode() for r in rows], (last[1], last[2], last[3], last[4])


def page(conn: sqlite3.Connection, batches: list[tuple[int, str]], q: ChannelQuery, after: PageKey | None,
         size: int, cutoffs: dict[int, PageKey], now: float, select: str | None = None, raw: bool = False) -> list:
    """Rows of one page as dicts, or, with `select` and raw=True, as tuples of those expressions
    (which may name batch_date like a column)."""
    params: dict = {"now": now, "size": size}
    base = _filters(q, params)
    arms = []
    for bid, date in batches:
        where = base
        if after is not None:
            # `score <= :a_s` lets the index seek to the position; the rest resolves ties.
            where += f" AND score <= :a_s AND {_after('a', after, _lit(date), params)}"
        if cutoffs:  # the IN test rejects most rows before the per-track comparisons
            beyond = " OR ".join(f"(track_id = :c{i} AND {_after(f'c{i}', cut, _lit(date), params)})"
                                 for i, (track, cut) in enumerate(sorted(cutoffs.items())))
            heavy = ", ".join(f":c{i}" for i in range(len(cutoffs)))
            params.update({f"c{i}": track for i, track in enumerate(sorted(cutoffs))})
            where += f" AND (track_id NOT IN ({heavy}) OR NOT ({beyond}))"
        cols = select or f"batch_date, {_SELECT}, status"
        # The inner query is flattened by SQLite, so each arm still walks its own score index.
        arms.append(f"SELECT {cols} FROM (SELECT {_lit(date)} AS batch_date, * FROM cand_{bid} WHERE {where})")
    if not arms:
        return []
    sql = " UNION ALL ".join(arms) + f" ORDER BY {ORDER} LIMIT :size"
    cur = conn.execute(sql, params)
    if raw:
        return cur.fetchall()
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r), program_id=q.program_id) for r in cur.fetchall()]


def _batch_counts(conn: sqlite3.Connection, path: str, bid: int) -> dict[tuple[str, int], int]:
    key = (path, os.stat(path).st_ino, bid)
    with _counts_lock:
        found = _counts.get(key)
    if found is None:
        found = {(c, t): n for c, t, n in conn.execute(
            f"SELECT channel, track_id, COUNT(*) FROM cand_{bid} GROUP BY channel, track_id")}
        with _counts_lock:
            _counts[key] = found
    return found


def cutoffs(conn: sqlite3.Connection, path: str, batches: list[tuple[int, str]], q: ChannelQuery,
            now: float) -> dict[int, PageKey]:
    """Cached per live batch set: batches are immutable and the cap ignores status, so the answer only
    changes when a batch is stored or expires (a heavy track costs ~0.25 s to rank at default scale)."""
    if q.max_per_track is None:
        return {}
    key = (path, os.stat(path).st_ino, tuple(batches), q.channel, q.min_score, q.marketplace, q.max_per_track)
    with _counts_lock:
        found = _cutoffs.get(key)
    if found is None:
        found = _compute_cutoffs(conn, path, batches, q, now)
        with _counts_lock:
            if len(_cutoffs) > 256:
                _cutoffs.clear()
            _cutoffs[key] = found
    return dict(found)


def _compute_cutoffs(conn: sqlite3.Connection, path: str, batches: list[tuple[int, str]], q: ChannelQuery,
                     now: float) -> dict[int, PageKey]:
    cap = q.max_per_track
    totals: dict[int, int] = {}
    for bid, _ in batches:
        for (channel, track), n in _batch_counts(conn, path, bid).items():
            if channel == q.channel:
                totals[track] = totals.get(track, 0) + n
    out: dict[int, PageKey] = {}
    for track in sorted(t for t, n in totals.items() if n > cap):  # an upper bound: most tracks stop here
        params: dict = {"now": now, "track": track, "offset": cap - 1}
        where = _filters(replace(q, status=None), params) + " AND track_id = :track"
        sql = " UNION ALL ".join(
            f"SELECT score, listener_id, track_id, {_lit(d)} AS batch_date FROM cand_{b} "
            f"INDEXED BY cand_{b}_track WHERE {where}"  # else the planner walks the score index for the ORDER BY
            for b, d in batches) + f" ORDER BY {ORDER} LIMIT 1 OFFSET :offset"
        row = conn.execute(sql, params).fetchone()
        if row is not None:
            out[track] = (row[0], row[1], row[2], row[3])
    return out
