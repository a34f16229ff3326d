"""Embedded warehouse adapter: a DuckDB file, opened read-only."""
from __future__ import annotations

import threading
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Iterator

import duckdb
import polars as pl
from pydantic import PrivateAttr

from music_feedback.warehouse.port import Warehouse, WarehouseError


class DuckDBWarehouse(Warehouse):
    """Each read opens the file read-only and closes it, so no lock outlives a read and DuckDB's buffer
    pool is freed after each (a connection kept for the run held ~100 MB of cached blocks). Inside a
    Dagster run the tables' columns are read once: a batch makes ~30 schema look-ups at ~30 ms a file open.
    A step's ~20 look-ups a day share one connection inside `session()`."""

    path: str
    _tables = PrivateAttr(default=None)  # table -> column names, for the run (see setup_for_execution)
    _local = PrivateAttr(default_factory=threading.local)  # this thread's session connection, if any

    def _connect(self) -> duckdb.DuckDBPyConnection:
        if not Path(self.path).is_file():
            raise WarehouseError(
                f"the embedded warehouse {self.path} does not exist: build it with "
                "`music-feedback warehouse seed` (make run does this when it is missing)")
        try:
            return duckdb.connect(self.path, read_only=True)
        except duckdb.Error as exc:
            raise WarehouseError(f"{self.describe()} cannot be opened ({exc}); rebuild it with "
                                 "`music-feedback warehouse seed --force`") from None

    def setup_for_execution(self, context) -> None:
        self.snapshot_schema()

    def teardown_after_execution(self, context) -> None:
        self._tables = None

    def snapshot_schema(self) -> None:
        """Answer columns_of from one read of every table's columns until teardown."""
        if Path(self.path).is_file():
            self._tables = self._read_schema()

    def _read_schema(self) -> dict[str, set[str]]:
        with self._connect() as con:
            rows = con.execute("SELECT table_name, column_name FROM information_schema.columns").fetchall()
        tables: dict[str, set[str]] = {}
        for t, c in rows:
            tables.setdefault(t, set()).add(c)
        return tables

    def describe(self) -> str:
        return f"DuckDB warehouse {self.path}"

    @contextmanager
    def session(self) -> Iterator[None]:
        if getattr(self._local, "con", None) is not None:  # nested: the outer block owns it
            yield
            return
        self._local.con = self._connect()
        try:
            yield
        finally:
            con, self._local.con = self._local.con, None
            con.close()  # and with it DuckDB's cached blocks

    def fetch(self, sql: str) -> pl.DataFrame:
        shared = getattr(self._local, "con", None)
        with nullcontext(shared) if shared is not None else self._connect() as con:
            try:
                return con.sql(sql).pl()
            except duckdb.BinderException as exc:
                raise WarehouseError(f"{self.describe()}: a column the query reads is missing: {exc}") from None
            except duckdb.Error as exc:
                raise WarehouseError(f"{self.describe()}: the query failed: {exc}") from None

    def columns_of(self, table: str) -> set[str]:
        tables = self._tables if self._tables is not None else self._read_schema()
        return tables.get(table, set())
