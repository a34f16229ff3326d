"""Bulk writes to SQLite from Arrow: ADBC's SQLite driver binds whole columns in C, so a day's 250K rows go
in ~0.4 s instead of ~0.9 s through Python tuples and `executemany`."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator


@contextmanager
def bulk_transaction(path: str) -> Iterator:
    """An ADBC cursor inside one IMMEDIATE transaction on `path` (committed on success, rolled back on
    any error), waiting up to 30 s for another writer as the store's other connections do."""
    import adbc_driver_sqlite.dbapi as adbc

    with adbc.connect(path, autocommit=True) as conn, conn.cursor() as cur:
        for pragma in ("busy_timeout=30000", "synchronous=NORMAL", "cache_size=-131072"):
            cur.execute(f"PRAGMA {pragma}")  # 128 MiB cache: index builds sort in memory
        cur.execute("BEGIN IMMEDIATE")
        try:
            yield cur
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise
