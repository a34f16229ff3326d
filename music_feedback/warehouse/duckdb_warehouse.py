"""Embedded warehouse adapter: a DuckDB file, opened read-only."""
from __future__ import annotations

import os
import threading
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Iterator

import duckdb
import polars as pl
from pydantic import Field, PrivateAttr

from music_feedback.warehouse.duckdb_stage import DuckDBStageSession
from music_feedback.warehouse.port import Warehouse, WarehouseError


def _inode(path: str) -> int | None:
    try:
        return os.stat(path).st_ino
    except FileNotFoundError:
        return None


class DuckDBWarehouse(Warehouse):
    """Each read opens the file read-only and closes it, so no lock outlives a read and DuckDB's buffer
    pool is freed after each (a connection kept for the run held ~100 MB of cached blocks). Inside a
    Dagster run the tables' columns are read once: a batch makes ~30 schema look-ups at ~30 ms a file open.
    A step's ~20 look-ups a day share one connection inside `session()`. A held warehouse (the service,
    which reads per request) keeps one connection and takes a cursor of it per read: opening the file
    cost ~17 ms a read; it is reopened when the file is replaced (`warehouse seed` renames a new one in)."""

    path: str = Field(description=(
        'Path of the DuckDB warehouse file (MUSIC_FEEDBACK_WAREHOUSE; default '
        'MUSIC_FEEDBACK_HOME/warehouse.duckdb).'))
    memory_limit: str = Field(default="512MB", description=(
        "What the batch's stage work in DuckDB may hold in memory before it spills to "
        "`spill_dir` (MUSIC_FEEDBACK_DUCKDB_MEMORY_LIMIT): the batch's memory stays flat however large the day."))
    read_memory_limit: str = Field(default="256MB", description=(
        "What one read (outside the stages) may hold in DuckDB's memory, its cache included."))
    spill_dir: str = Field(default="", description=(
        "Folder DuckDB spills to past `memory_limit` (MUSIC_FEEDBACK_DUCKDB_SPILL_DIR; default "
        "MUSIC_FEEDBACK_HOME/duckdb_spill): it needs room for a few times the day's plays."))
    threads: int = Field(default=0, description="DuckDB's threads for the stage work; 0: one per core.")
    _tables = PrivateAttr(default=None)  # table -> column names, for the run (see setup_for_execution)
    _local = PrivateAttr(default_factory=threading.local)  # this thread's session connection, if any
    _held = PrivateAttr(default=None)  # hold(): [inode, connection] shared by the process's threads
    _held_cond = PrivateAttr(default_factory=threading.Condition)
    _readers = PrivateAttr(default=0)  # reads using the held connection now

    def _connect(self) -> duckdb.DuckDBPyConnection:
        self._require_file()
        try:
            # The reads' cache is bounded: the feature hydration reads a 20x day's listener ranges through it,
            # and DuckDB's default is 80% of the machine's memory (at 20x its cache set the batch's peak).
            return duckdb.connect(self.path, read_only=True, config={"memory_limit": self.read_memory_limit})
        except duckdb.Error as exc:
            raise self.unreadable(exc) from None

    def _require_file(self) -> None:
        if not Path(self.path).is_file():
            raise WarehouseError(
                f"the embedded warehouse {self.path} does not exist: build it with "
                "`music-feedback warehouse seed` (make run does this when it is missing)")

    def unreadable(self, exc: Exception) -> WarehouseError:
        return WarehouseError(f"{self.describe()} cannot be opened ({exc}); rebuild it with "
                              "`music-feedback warehouse seed --force`")

    def setup_for_execution(self, context) -> None:
        self.snapshot_schema()

    def teardown_after_execution(self, context) -> None:
        self._tables = None

    def snapshot_schema(self) -> None:
        """Answer columns_of from one read of every table's columns until teardown."""
        if Path(self.path).is_file():
            self._tables = self._read_schema()

    def hold(self) -> None:
        self._held = [None, None]

    @contextmanager
    def _held_cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor of the held connection. When the file at `path` is a new one, the old connection is
        closed once no read uses it (DuckDB hands a path's open database to every connect of it, so the
        new file is only read once the old one is closed), then the new file is opened with its schema."""
        with self._held_cond:
            while _inode(self.path) != self._held[0] or self._held[1] is None:
                if self._readers:
                    self._held_cond.wait()
                    continue
                if self._held[1] is not None:
                    self._held[1].close()
                self._held[:] = [_inode(self.path), None]
                self._held[1] = self._connect()
                self._tables = self._read_schema(self._held[1])
            self._readers += 1
            con = self._held[1]
        try:
            with con.cursor() as cursor:
                yield cursor
        finally:
            with self._held_cond:
                self._readers -= 1
                self._held_cond.notify_all()

    def _read_schema(self, con: duckdb.DuckDBPyConnection | None = None) -> dict[str, set[str]]:
        with nullcontext(con) if con is not None else self._connect() as con:
            rows = con.execute("SELECT table_name, column_name FROM information_schema.columns").fetchall()
        tables: dict[str, set[str]] = {}
        for t, c in rows:
            tables.setdefault(t, set()).add(c)
        return tables

    def describe(self) -> str:
        return f"DuckDB warehouse {self.path}"

    @contextmanager
    def stage_session(self) -> Iterator[DuckDBStageSession]:
        self._require_file()
        spill = self.spill_dir or str(Path(self.path).parent / "duckdb_spill")
        # The session attaches the file itself: a file it cannot read gets the same message as a read's,
        # without opening it once more first (~0.02 s a session, five or more a batch).
        session = DuckDBStageSession(self.path, self.memory_limit, spill, self.threads or None, self.describe(),
                                     unreadable=self.unreadable)
        try:
            yield session
        finally:
            session.close()

    @contextmanager
    def session(self) -> Iterator[None]:
        if self._held is not None or getattr(self._local, "con", None) is not None:  # held, or nested
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
        if shared is not None:
            opened = nullcontext(shared)
        else:
            opened = self._held_cursor() if self._held is not None else self._connect()
        with opened as con:
            try:
                return con.sql(sql).pl()
            except duckdb.BinderException as exc:
                raise WarehouseError(f"{self.describe()}: a column the query reads is missing: {exc}") from None
            except duckdb.Error as exc:
                raise WarehouseError(f"{self.describe()}: the query failed: {exc}") from None

    def columns_of(self, table: str) -> set[str]:
        if self._held is not None:
            with self._held_cursor():  # a replaced file brings its own schema
                pass
        tables = self._tables if self._tables is not None else self._read_schema()
        return tables.get(table, set())
