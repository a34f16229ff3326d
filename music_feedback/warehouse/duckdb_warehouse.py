"""Embedded warehouse adapter: a DuckDB file, opened read-only per query."""
from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl

from music_feedback.warehouse.port import Warehouse, WarehouseError


class DuckDBWarehouse(Warehouse):
    path: str

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

    def describe(self) -> str:
        return f"DuckDB warehouse {self.path}"

    def fetch(self, sql: str) -> pl.DataFrame:
        with self._connect() as con:
            try:
                return con.sql(sql).pl()
            except duckdb.BinderException as exc:
                raise WarehouseError(f"{self.describe()}: a column the query reads is missing: {exc}") from None
            except duckdb.Error as exc:
                raise WarehouseError(f"{self.describe()}: the query failed: {exc}") from None

    def columns_of(self, table: str) -> set[str]:
        with self._connect() as con:
            rows = con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = ?", [table]).fetchall()
        return {r[0] for r in rows}
