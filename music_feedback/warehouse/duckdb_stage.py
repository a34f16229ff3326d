"""The embedded warehouse's stage session: an in-memory DuckDB with the warehouse file attached read-only
(the service and other readers keep their shared lock), a memory limit and a spill folder, so a day of any
size runs in bounded memory. Stage outputs are written by DuckDB's own Parquet writer straight into the IO
manager's temporary file; stored stages are read back with read_parquet."""
from __future__ import annotations

import os
import re
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Callable, Sequence

import duckdb
import polars as pl

from music_feedback.io.chunks import FrameChunks
from music_feedback.warehouse.port import WarehouseError
from music_feedback.warehouse.stage import StageSession

CHUNK_ROWS = 500_000  # Arrow batches, when the output is not a local file


def _quoted(path: str) -> str:
    return "'" + path.replace("'", "''") + "'"


def _name(name: str) -> str:
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        raise ValueError(f"not a stage table name: {name!r}")
    return name


class DuckDBStageSession(StageSession):
    # A pass's groups and joins fit DuckDB's memory limit: at 20x (16M listeners, 30M pairs) the filter stage
    # took 111 s in one pass, spilling, 42 s in passes of 2M listeners and 29 s in passes of 1M over a unify
    # clustered the same way. The seed's day (800K listeners) is one pass.
    listeners_per_pass = 1_000_000

    def __init__(self, warehouse_path: str, memory_limit: str, spill_dir: str, threads: int | None, describe: str,
                 unreadable: Callable[[Exception], Exception] = WarehouseError):
        self._describe = describe
        Path(spill_dir).mkdir(parents=True, exist_ok=True)
        # What `create` makes lives here as Parquet, not as in-memory tables: a day's 30M decided pairs in a
        # temporary table ran DuckDB out of memory at its limit, while COPY streams them to disk.
        self._scratch = Path(tempfile.mkdtemp(prefix="stage-", dir=spill_dir))
        config = {"memory_limit": memory_limit, "temp_directory": spill_dir,
                  "preserve_insertion_order": False}  # lets the Parquet writer use every thread
        if threads:
            config["threads"] = threads
        self._con = duckdb.connect(":memory:", config=config)
        try:
            self._con.execute(f"ATTACH {_quoted(warehouse_path)} AS warehouse (READ_ONLY)")
        except duckdb.Error as exc:
            self.close()
            raise unreadable(exc) from None
        self._run("USE warehouse")
        self._uploads: list[str] = []

    def close(self) -> None:
        self._con.close()  # and with it DuckDB's buffers: its allocator keeps them while the database is open
        shutil.rmtree(self._scratch, ignore_errors=True)

    def _run(self, sql: str):
        return self._guard(lambda: self._con.execute(sql))

    def _guard(self, call):
        """`call()`, with DuckDB's errors as WarehouseErrors saying what to change."""
        try:
            return call()
        except duckdb.OutOfMemoryException as exc:
            raise WarehouseError(
                f"{self._describe} ran out of memory for the day: {str(exc).splitlines()[0]}; raise "
                "MUSIC_FEEDBACK_DUCKDB_MEMORY_LIMIT, point MUSIC_FEEDBACK_DUCKDB_SPILL_DIR at a disk with room, "
                "or run a smaller scale") from None
        except duckdb.IOException as exc:
            text = str(exc).splitlines()[0]
            if "space" in text.lower() or "disk" in text.lower() or "temp" in text.lower():
                raise WarehouseError(
                    f"{self._describe} could not spill to disk: {text}; point MUSIC_FEEDBACK_DUCKDB_SPILL_DIR "
                    "at a disk with room or raise MUSIC_FEEDBACK_DUCKDB_MEMORY_LIMIT") from None
            raise WarehouseError(f"{self._describe}: {text}") from None
        except duckdb.BinderException as exc:
            raise WarehouseError(f"{self._describe}: a column the query reads is missing: "
                                 f"{str(exc).splitlines()[0]}") from None
        except duckdb.Error as exc:
            raise WarehouseError(f"{self._describe}: the query failed: {str(exc).splitlines()[0]}") from None

    def upload(self, name: str, frame: pl.DataFrame) -> None:
        view = f"_upload_{_name(name)}"
        self._con.register(view, frame)
        self._run(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM {view}")
        self._con.unregister(view)

    def create(self, name: str, sql: str) -> None:
        path = _quoted(str(self._scratch / f"{_name(name)}.parquet"))
        self._run(f"COPY ({sql}) TO {path} (FORMAT parquet, COMPRESSION lz4)")
        self._run(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT * FROM read_parquet({path})")

    def fetch(self, sql: str) -> pl.DataFrame:
        return self._guard(lambda: self._con.sql(sql).pl())

    def output(self, sql: str, asset_path: Sequence[str], partition: str) -> FrameChunks:
        def chunks():
            yield from self._guard(lambda: self._con.sql(sql).to_arrow_reader(CHUNK_ROWS))

        def copy(target: str) -> int:
            # DuckDB names its temporary files itself; write beside the target and move it in.
            staging = f"{target}.{uuid.uuid4().hex}.duckdb.parquet"
            try:
                rows = self._run(f"COPY ({sql}) TO {_quoted(staging)} (FORMAT parquet, COMPRESSION lz4)").fetchone()[0]
                os.replace(staging, target)
            finally:
                Path(staging).unlink(missing_ok=True)
            return int(rows)
        return FrameChunks(chunks(), copy=copy)

    def stored(self, asset_path: Sequence[str], partition: str, location: str) -> str:
        if "://" in location:
            raise WarehouseError(
                f"{self._describe} reads stored stages from local files, and {'/'.join(asset_path)} is at "
                f"{location}: run the embedded warehouse with the local IO manager")
        if not Path(location).is_file():
            raise FileNotFoundError(f"asset {'/'.join(asset_path)} partition {partition} has no frame at "
                                    f"{location}: materialize it first")
        return f"read_parquet({_quoted(location)})"
