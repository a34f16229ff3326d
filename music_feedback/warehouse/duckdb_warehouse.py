"""Embedded warehouse adapter: a DuckDB file, opened read-only."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import duckdb
import polars as pl
from pydantic import PrivateAttr

from music_feedback.warehouse.port import Warehouse, WarehouseError


class DuckDBWarehouse(Warehouse):
    """Inside a Dagster run one read-only connection serves every read of the run (opening the file
    costs ~30 ms, and a batch makes ~50 reads and schema look-ups) and is closed when the run ends, so
    no lock outlives it; called outside a run, each read opens its own."""

    path: str
    _session = PrivateAttr(default=None)  # duckdb.DuckDBPyConnection while a run holds it
    _tables = PrivateAttr(default=None)  # table -> column names, read once per session

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
        self.open_session()

    def teardown_after_execution(self, context) -> None:
        self.close_session()

    def open_session(self) -> None:
        """Keep one connection (and the tables' columns) until close_session."""
        if self._session is None and Path(self.path).is_file():
            self._session = self._connect()

    def close_session(self) -> None:
        if self._session is not None:
            self._session.close()
        self._session, self._tables = None, None

    @contextmanager
    def _reading(self) -> Iterator[duckdb.DuckDBPyConnection]:
        if self._session is not None:
            with self._session.cursor() as cur:  # a cursor per read: safe from any thread
                yield cur
        else:
            with self._connect() as con:
                yield con

    def describe(self) -> str:
        return f"DuckDB warehouse {self.path}"

    def fetch(self, sql: str) -> pl.DataFrame:
        with self._reading() as con:
            try:
                return con.sql(sql).pl()
            except duckdb.BinderException as exc:
                raise WarehouseError(f"{self.describe()}: a column the query reads is missing: {exc}") from None
            except duckdb.Error as exc:
                raise WarehouseError(f"{self.describe()}: the query failed: {exc}") from None

    def columns_of(self, table: str) -> set[str]:
        if self._session is not None and self._tables is not None:
            return self._tables.get(table, set())
        with self._reading() as con:
            rows = con.execute("SELECT table_name, column_name FROM information_schema.columns").fetchall()
        schema: dict[str, set[str]] = {}
        for t, c in rows:
            schema.setdefault(t, set()).add(c)
        if self._session is not None:  # a read-only session sees a fixed schema
            self._tables = schema
        return schema.get(table, set())
