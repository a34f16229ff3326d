"""The warehouse port: portable SQL in, polars frames out; adapters only know how to run SQL."""
from __future__ import annotations

import re
from contextlib import contextmanager
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Iterator

import polars as pl
from dagster import ConfigurableResource

from music_feedback.warehouse.schema import TABLES

if TYPE_CHECKING:
    from music_feedback.warehouse.stage import StageSession

RELEASE_WINDOW_DAYS = 7


class WarehouseError(RuntimeError):
    """The warehouse cannot serve a read; the message names the connector, table or column."""


def date_literal(d: date) -> str:
    """An ANSI DATE literal: portable across DuckDB, Postgres and Redshift."""
    return f"DATE '{d.isoformat()}'"


def text_literal(value: str) -> str:
    """A SQL text literal, quotes doubled."""
    return "'" + value.replace("'", "''") + "'"


def timestamp_literal(epoch: float) -> str:
    """An ANSI TIMESTAMP literal in UTC (the warehouse's timestamps have no zone), to the microsecond."""
    return f"TIMESTAMP '{datetime.fromtimestamp(epoch, timezone.utc).strftime('%Y-%m-%d %H:%M:%S.%f')}'"


def release_window_start(batch_date: date) -> date:
    """First release day of a "new" track: the 7 days ending with the batch day (the seed's
    CURRENT_DATE - 7, run at 02:00 the next day, is the same D-6)."""
    return batch_date - timedelta(days=RELEASE_WINDOW_DAYS - 1)


def bind_batch_window(query: str, batch_date: date) -> str:
    """Bind the extract's window parameters for the batch day to DATE literals."""
    values = {
        ":batch_start": date_literal(batch_date),
        ":batch_end": date_literal(batch_date + timedelta(days=1)),
        ":release_window_start": date_literal(release_window_start(batch_date)),
    }
    return re.sub(r":(batch_start|batch_end|release_window_start)\b", lambda m: values[m.group(0)], query)


class Warehouse(ConfigurableResource):
    """Port: subclasses implement `fetch` and `columns_of`; everything else is shared."""

    def fetch(self, sql: str) -> pl.DataFrame:
        raise NotImplementedError

    def columns_of(self, table: str) -> set[str]:
        """Column names of a table, empty when the table does not exist."""
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    @contextmanager
    def session(self) -> Iterator[None]:
        """Reads inside the block may share a connection (a step's several look-ups); no-op by default."""
        yield

    def hold(self) -> None:
        """For a long-lived process (the service, which reads per request): keep connections and the
        tables' columns between reads instead of opening them per read. No-op by default."""

    @contextmanager
    def stage_session(self) -> Iterator["StageSession"]:
        """A session for the batch's warehouse-side stages (warehouse/stage.py)."""
        raise WarehouseError(f"{self.describe()} cannot run the batch's stages")
        yield

    def meta(self) -> dict[str, str]:
        """What the generator recorded (seed, dates); empty for a warehouse it did not write."""
        if not self.columns_of("warehouse_meta"):
            return {}
        return dict(self.fetch("SELECT key, value FROM warehouse_meta").iter_rows())

    def require(self, table: str, columns: list[str] | None = None, connector: str = "warehouse") -> None:
        """Fail with a message naming the connector, table and missing columns."""
        have = self.columns_of(table)
        if not have:
            raise WarehouseError(
                f"connector '{connector}': table '{table}' does not exist in {self.describe()}; "
                "build the embedded warehouse with `music-feedback warehouse seed --force` or point the "
                "connector at a warehouse that has it")
        missing = [c for c in (columns or TABLES.get(table, [])) if c not in have]
        if missing:
            raise WarehouseError(
                f"connector '{connector}': table '{table}' in {self.describe()} is missing column(s) "
                f"{', '.join(missing)}")

    def require_contract(self, connector: str, source_table: str) -> None:
        """Check every table the batch reads before anything is written: a late failure would leave
        the early stages of the day materialized from a warehouse the later ones cannot use."""
        self.require(source_table, connector=connector)
        for table in TABLES:
            if table not in ("track_plays", source_table):
                self.require(table, connector=connector)
