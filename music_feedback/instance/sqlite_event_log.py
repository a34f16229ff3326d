"""The event log of the embedded Dagster instance (`make run`, `make ui`): Dagster's SQLite event log
storage, in the same files, with two changes to how it writes.

- An asset's latest-event row is updated in place, and inserted only when there is none. Dagster's own
  tries the INSERT first and catches the IntegrityError, which every materialization after an asset's
  first raises; the caught error's traceback holds the whole stack in a reference cycle, the step's output
  among its locals, so each step's output frame (up to ~300 MB) stayed alive until the collector's next
  full pass. (Dagster's PostgreSQL storage upserts, so deploy/ needs no such change.)
- One SQLAlchemy engine per database file, not one per event: a connection is still opened and closed for
  each event (the UI watches the files), but an engine's set-up is not repeated ~140 times a run.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from contextlib import contextmanager
from typing import Iterator

from dagster._config import StringSource
from dagster._core.storage.event_log.schema import AssetKeyTable
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

MAX_ENGINES = 32  # the index file and the recent runs' files; the UI reads many runs over a day


class EventLogStorage(SqliteEventLogStorage):
    """Config: `dagster_home` (the instance's folder); the files are where Dagster's default keeps them."""

    def __init__(self, base_dir: str, inst_data=None):
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        super().__init__(base_dir, inst_data)

    @classmethod
    def config_type(cls):
        return {"dagster_home": StringSource}

    @classmethod
    def from_config_value(cls, inst_data, config_value) -> "EventLogStorage":
        return cls(os.path.join(config_value["dagster_home"], "history", "runs", ""), inst_data=inst_data)

    def _engine(self, shard: str) -> Engine:
        engine = self._engines.pop(shard, None) or create_engine(
            self.conn_string_for_shard(shard), poolclass=NullPool,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})
        self._engines[shard] = engine  # most recently used last
        if len(self._engines) > MAX_ENGINES:
            self._engines.popitem(last=False)
        return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock:
            engine = self._engine(shard)
            if shard not in self._initialized_dbs:  # as Dagster's: `wipe` and `upgrade` reset this set
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

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
