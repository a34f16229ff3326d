"""The SQLite adapter's serving reads: channel pages in keyset order and per-track cutoffs.

Each live batch table is one arm of a UNION ALL; every arm walks its (channel, score DESC, ...) index
from the page position, and SQLite merges the ordered arms, so a page costs about `size` row reads
whatever the depth. Per-track row counts of a batch never grow (batches are replaced, not appended),
so they are counted once per process and only tracks that may pass the cap are looked at closely.
"""
from __future__ import annotations

import os
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Callable

import orjson
import polars as pl

from music_feedback.store.base import SERVING_COLUMNS, ChannelQuery, PageKey, order_key

Batch = tuple[int, str, int, bool]  # (table id, batch date, render mode, dated): see sqlite_store
Select = Callable[[str, int], str]  # (batch date, render mode) -> an arm's select list
# How a batch's rows become JSON (candidate_batches.plain): json_object, one printf per row, or the JSON
# stored with each row when the batch was written.
GENERAL, PLAIN, RENDERED = 0, 1, 2

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
        # Reads from the OS page cache without copying each page into SQLite's cache: about 0.5-0.9 ms less
        # CPU per 1,000-row page. SQLite caps the size at its build's maximum (2 GB in common builds).
        conn.execute(f"PRAGMA mmap_size={1 << 40}")
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
_INTS = {"listener_id", "track_id", "artist_id", "expires_at"}
# Batches stored before RENDERED whose text needed no JSON escaping (no NULL, no infinite REAL) are
# rendered by one printf per row, the same bytes as json_object, with REALs in 17 significant digits.
_PLAIN_FORMAT = "{" + ",".join(
    f'"{c}":' + ("%!.17g" if c in _REALS else "%lld" if c in _INTS else '"%s"')
    for c in SERVING_COLUMNS) + ',"batch_date":%s,"status":"%s"}'


# A rendered batch stores each row's JSON up to artist_id; SQL adds the rest: the model versions and the
# expiry are mostly one value per batch (constants of its table), the status changes after the write.
_STORED_JSON = SERVING_COLUMNS[:SERVING_COLUMNS.index("artist_id") + 1]
_TAIL = SERVING_COLUMNS[len(_STORED_JSON):]


RENDER_SLICE = 50_000


def _render(df: pl.DataFrame) -> pl.Series:
    cols = [pl.when(pl.col(c).is_finite()).then(pl.col(c)).alias(c) if c in _REALS else pl.col(c)
            for c in _STORED_JSON]
    return df.select(pl.struct(cols).struct.json_encode().str.head(-1).alias("item")).to_series()


def rendered(df: pl.DataFrame) -> pl.Series:
    """Each row's serving JSON without its last columns and closing brace: the bytes orjson writes (the
    shortest repr that round-trips a REAL; NaN and infinities as null); a page then costs ~1 ms less CPU
    than rendering 1,000 rows with printf. polars encodes a column on one thread, so slices are encoded
    on a pool (releasing the GIL): ~0.05 s for a default day instead of ~0.12."""
    if df.height <= RENDER_SLICE:
        return _render(df)
    slices = [df.slice(i, RENDER_SLICE) for i in range(0, df.height, RENDER_SLICE)]
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        return pl.concat(list(pool.map(_render, slices)))


def _item(date: str, render: int) -> str:
    """SQL for one row's serving_item JSON in the arm of batch `date`, as a BLOB (Python gets bytes as they
    are, not a str to decode and encode again)."""
    if render == RENDERED:
        tail = "".join(f" || {_lit(f',{orjson.dumps(c).decode()}:')} || json_quote({c})" for c in _TAIL)
        dated = _lit(f',"batch_date":{orjson.dumps(date).decode()},"status":"')
        obj = f"""item{tail} || {dated} || status || '"}}'"""
    elif render == PLAIN:
        date_json = _lit(orjson.dumps(date).decode())
        obj = f"printf('{_PLAIN_FORMAT}', {', '.join(SERVING_COLUMNS)}, {date_json}, status)"
    else:
        pairs = ", ".join(f"'{c}', {_json_value(c)}" for c in (*SERVING_COLUMNS, "batch_date", "status"))
        obj = f"json_object({pairs})"
    return f"CAST({obj} AS BLOB)"


def page_json(conn: sqlite3.Connection, batches: list[Batch], q: ChannelQuery, after: PageKey | None,
              size: int, cutoffs: dict[int, PageKey], now: float) -> tuple[list[bytes], PageKey | None]:
    """`page`, with each row serialised by SQLite itself (no per-row Python objects)."""
    rows = _capped(conn, batches, q, after, size, cutoffs, now, _item)
    return [r[0] for r in rows], (tuple(rows[-1][-4:]) if rows else None)


def page(conn: sqlite3.Connection, batches: list[Batch], q: ChannelQuery, after: PageKey | None,
         size: int, cutoffs: dict[int, PageKey], now: float) -> list[dict]:
    """`page_json`'s rows as dicts: the JSON holds every serving column, whichever columns a batch's table has."""
    return [{**orjson.loads(row), "program_id": q.program_id} for row in page_json(conn, batches, q, after, size,
                                                                                   cutoffs, now)[0]]


def _capped(conn: sqlite3.Connection, batches: list[Batch], q: ChannelQuery, after: PageKey | None,
            size: int, cutoffs: dict[int, PageKey], now: float, select: Select) -> list[tuple]:
    """Up to `size` rows (select's values, then score, listener_id, track_id, batch_date) after `after`,
    none past its track's cutoff. A track whose cutoff lies before the position is left out in SQL;
    rows of a track whose cutoff is still ahead are dropped here (cheaper than testing every row in
    SQL), fetching on until the page is full."""
    cut = {t: order_key(k) for t, k in cutoffs.items()}
    out: list[tuple] = []
    while len(out) < size:
        pos = order_key(after) if after is not None else None
        done = [t for t, k in cut.items() if pos is not None and k < pos]
        want = size - len(out)
        rows = _fetch(conn, batches, q, after, want, done, now, select)
        ahead = {t: k for t, k in cut.items() if t not in done}
        if ahead:
            out += [r for r in rows if r[-2] not in ahead or (-r[-4], r[-3], r[-2], r[-1]) <= ahead[r[-2]]]
        else:
            out += rows
        if len(rows) < want:
            break
        after = tuple(rows[-1][-4:])
    return out[:size]


def _fetch(conn: sqlite3.Connection, batches: list[Batch], q: ChannelQuery, after: PageKey | None,
           size: int, left_out: list[int], now: float, select: Select) -> list[tuple]:
    params: dict = {"now": now, "size": size}
    base = _filters(q, params)
    if left_out:
        params.update({f"x{i}": t for i, t in enumerate(left_out)})
        base += f" AND track_id NOT IN ({', '.join(f':x{i}' for i in range(len(left_out)))})"
    arms = []
    for bid, date, render, dated in batches:
        where = base
        if after is not None:
            # `score <= :a_s` lets the index seek to the position; the rest resolves ties.
            where += f" AND score <= :a_s AND {_after('a', after, _lit(date), params)}"
        # A dated table's channel index holds the whole order; an older table's gives score order only, and
        # SQLite sorts each run of equal scores (its inner query is flattened, so it still walks that index).
        source = (f"cand_{bid} WHERE {where}" if dated
                  else f"(SELECT {_lit(date)} AS batch_date, * FROM cand_{bid} WHERE {where})")
        arms.append(f"SELECT {select(date, render)}, score AS _s, listener_id AS _l, track_id AS _t, "
                    f"batch_date AS _d FROM {source}")
    if not arms:
        return []
    sql = " UNION ALL ".join(arms) + " ORDER BY _s DESC, _l, _t, _d LIMIT :size"
    return conn.execute(sql, params).fetchall()


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


def cutoffs(conn: sqlite3.Connection, path: str, batches: list[Batch], q: ChannelQuery,
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


def _compute_cutoffs(conn: sqlite3.Connection, path: str, batches: list[Batch], q: ChannelQuery,
                     now: float) -> dict[int, PageKey]:
    cap = q.max_per_track
    totals: dict[int, int] = {}
    for bid, *_ in batches:
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
            for b, d, *_ in batches) + f" ORDER BY {ORDER} LIMIT 1 OFFSET :offset"
        row = conn.execute(sql, params).fetchone()
        if row is not None:
            out[track] = (row[0], row[1], row[2], row[3])
    return out
