"""The event log of the embedded Dagster instance (`make run`, `make ui`): Dagster's SQLite event log
storage, in the same files, with these changes to how it writes.

- An asset's latest-event row is updated in place, and inserted only when there is none. Dagster's own
  tries the INSERT first and catches the IntegrityError, which every materialization after an asset's
  first raises; the caught error's traceback holds the whole stack in a reference cycle, the step's output
  among its locals, so each step's output frame (up to ~300 MB) stayed alive until the collector's next
  full pass. (Dagster's PostgreSQL storage upserts, so deploy/ needs no such change.)
- One connection per database file, kept open (at most MAX_ENGINES files), not one opened and closed per
  event: closing a file's last connection checkpoints its WAL into the file and deletes the WAL, with their
  fsyncs, ~100 times a run (~0.3 s of a batch). A commit still fsyncs the WAL, so nothing committed is less
  durable. The UI learns of a run's new events from the run file's modification (a watchdog), which the
  checkpoint used to cause: a write now touches the file's mtime instead.
- Whether a table exists is remembered once it does. Dagster asks before storing each check result and
  each tagged materialization, through a new connection each time (~5 ms, ~0.1 s of a batch).
- A new run's file starts as a copy of an empty one, made once per Dagster version. Creating its tables
  and stamping its alembic revision took ~0.15 s of every run (alembic reads all its scripts each time).
  A file that has a revision is left as it is, as Dagster's set-up would after reading those scripts.
- A batch of events (Dagster sends the ~20 planned materializations and checks at a run's start as one,
  when DAGSTER_EVENT_BATCH_SIZE is set) is one transaction per file instead of two or three per event.
  If it fails, nothing of it is stored and Dagster stores the events one by one.
"""
from __future__ import annotations

import os
import shutil
import sqlite3
import threading
import uuid
from collections import OrderedDict
from contextlib import ExitStack, closing, contextmanager
from typing import Iterator

from dagster import __version__ as dagster_version
from dagster._config import StringSource
from dagster._core.storage.event_log.schema import AssetKeyTable
from dagster._core.storage.event_log.sqlite.sqlite_event_log import INDEX_SHARD_NAME, SqliteEventLogStorage
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool, StaticPool

MAX_ENGINES = 32  # the index file and the recent runs' files; the UI reads many runs over a day


def _stamped(path: str) -> bool:
    """Whether the file has an alembic revision, which is when Dagster's set-up of it does nothing."""
    try:
        with closing(sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_SECONDS)) as conn:
            return conn.execute("SELECT 1 FROM alembic_version").fetchone() is not None
    except sqlite3.Error:  # no such table yet: Dagster's set-up makes it
        return False


class EventLogStorage(SqliteEventLogStorage):
    """Config: `dagster_home` (the instance's folder); the files are where Dagster's default keeps them."""

    def __init__(self, base_dir: str, inst_data=None):
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._tables_present: set[str] = set()  # a table once created stays until `wipe`
        self._batch = threading.local()  # .conns: shard -> the connection of this thread's open batch
        super().__init__(base_dir, inst_data)

    @classmethod
    def config_type(cls):
        return {"dagster_home": StringSource}

    @classmethod
    def from_config_value(cls, inst_data, config_value) -> "EventLogStorage":
        return cls(os.path.join(config_value["dagster_home"], "history", "runs", ""), inst_data=inst_data)

    def _engine(self, shard: str) -> Engine:
        """The file's engine, holding its one connection (StaticPool); any thread may use it, one at a time
        under `_db_lock`, as Dagster's own storage uses its connections."""
        engine = self._engines.pop(shard, None) or create_engine(
            self.conn_string_for_shard(shard), poolclass=StaticPool,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False})
        self._engines[shard] = engine  # most recently used last
        if len(self._engines) > MAX_ENGINES:
            self._engines.popitem(last=False)[1].dispose()
        return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        batch = getattr(self._batch, "conns", None)
        if batch is not None:  # inside store_event_batch, which holds the lock: join its transaction
            if shard not in batch:
                batch[shard] = self._batch.stack.enter_context(self._transaction(shard))
            yield batch[shard]
            return
        with self._db_lock, self._transaction(shard) as conn:
            yield conn

    @contextmanager
    def _transaction(self, shard: str) -> Iterator[Connection]:
        engine = self._engine(shard)
        if shard not in self._initialized_dbs:  # as Dagster's: `wipe` and `upgrade` reset this set
            self._initdb(engine)
            self._initialized_dbs.add(shard)
        with engine.connect() as conn:
            changes = conn.connection.dbapi_connection.total_changes
            with conn.begin():
                yield conn
            if shard != INDEX_SHARD_NAME and conn.connection.dbapi_connection.total_changes != changes:
                os.utime(self.path_for_shard(shard))  # what the UI's watcher of this run waits for

    def store_event_batch(self, events) -> None:
        with self._db_lock, ExitStack() as stack:  # on leaving: every file's transaction commits, or all roll back
            self._batch.stack, self._batch.conns = stack, {}
            try:
                for event in events:
                    self.store_event(event)
            finally:
                self._batch.conns = None

    def _initdb(self, engine: Engine, for_index_shard: bool = False) -> None:
        path = engine.url.database
        if path and os.path.exists(path) and _stamped(path):
            return  # all Dagster's set-up would do, after reading every alembic script to find the head (~0.03 s)
        if for_index_shard or not path or os.path.exists(path):
            return super()._initdb(engine, for_index_shard)
        template = os.path.join(self._base_dir, f".run-template-{dagster_version}.sqlite")  # not *.db: no run
        if not os.path.exists(template):
            self._make_template(template)
        tmp = os.path.join(self._base_dir, f".{uuid.uuid4().hex}.tmp")
        shutil.copyfile(template, tmp)
        try:
            os.link(tmp, path)  # never over a file another process made meanwhile
        except FileExistsError:
            super()._initdb(engine)  # Dagster's own, which waits out another process's set-up
        finally:
            os.unlink(tmp)

    def _make_template(self, template: str) -> None:
        tmp = f"{template}.{uuid.uuid4().hex}.tmp"
        engine = create_engine(f"sqlite:///{tmp}", poolclass=NullPool)
        try:
            super()._initdb(engine)
        finally:
            engine.dispose()  # the last connection closed: its WAL is checkpointed into the file
        os.replace(tmp, template)

    def has_table(self, table_name: str) -> bool:
        if table_name not in self._tables_present and super().has_table(table_name):
            self._tables_present.add(table_name)
        return table_name in self._tables_present

    def _close_all(self) -> None:
        self._tables_present.clear()
        with self._db_lock:
            while self._engines:
                self._engines.popitem()[1].dispose()

    def wipe(self) -> None:
        self._close_all()  # before the files go
        super().wipe()

    def dispose(self) -> None:
        self._close_all()
        super().dispose()

    def _store_asset_event(self, conn: Connection, event, event_id: int) -> None:
        if not (event.dagster_event and event.dagster_event.asset_key):
            return
        values = self._get_asset_entry_values(event, event_id, self._has_asset_key_index_cols_on_connection(conn))
        if not values:
            return
        asset_key = event.dagster_event.asset_key.to_string()
        updated = conn.execute(AssetKeyTable.update().values(**values).where(AssetKeyTable.c.asset_key == asset_key))
        if updated.rowcount == 0:
            conn.execute(AssetKeyTable.insert().values(asset_key=asset_key, **values))
