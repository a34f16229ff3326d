"""Redshift's stage session: the extract, the unify and the filter chain run inside the cluster, on one
psycopg2 connection (with the adapter's statement timeout) for the session.

- `upload`: a TEMP table, the frame inserted in bounded batches (psycopg2.extras.execute_values). That is
  fine for what is uploaded today (the program's own ledger of the week: thousands of rows). At large scale
  the way in is a COPY from S3 (the frame written as Parquet under the UNLOAD prefix, then
  `COPY ... FROM 's3://...' IAM_ROLE ... FORMAT AS PARQUET`): every slice loads its share in parallel,
  where INSERTs go through the leader node.
- `create`: CREATE TEMP TABLE name AS sql: the session's intermediate tables never leave the cluster.
- `fetch`: small results (counts, statistics), never a stage's rows.
- `output`: the stage's rows are kept in Redshift as a real table in `stage_schema` (named from the asset
  path and the partition, see `stage_table`), so later sessions and processes read them there through
  `stored`; it is built under a fresh name and swapped in by DROP + ALTER TABLE RENAME in one transaction,
  so a failure leaves the previous table (or none), never a half-written one. The IO manager gets the same
  rows as a FrameChunks streamed from that table through a server-side cursor, CHUNK_ROWS at a time (the
  Python stages downstream read filtered_candidates from it, `why` reads candidate_decisions).

  A Redshift cursor materialises its whole result on the leader node before the first row leaves it (and
  the cluster caps a cursor's result size by node type), so this streaming hand-off is for today's scale.
  At 1000x the hand-off should be UNLOAD (unload.py: the adapter's unload_s3_uri / unload_iam_role) straight
  to the IO manager's prefix, every slice writing in parallel; that needs the IO manager to accept a stage
  output of several Parquet objects (or a manifest) instead of one object at its key, which it does not yet.
- `stored`: the table an `output` kept (its qualified name), or an error naming what to materialize.

Errors become WarehouseErrors saying what to change: the statement timeout
(MUSIC_FEEDBACK_REDSHIFT_QUERY_TIMEOUT_S), a full disk (the cluster's node count or node type), memory
(the WLM queue's memory, the node type or count).

Stage tables are kept one per asset and partition and replaced when the partition is materialized again;
dropping old partitions' tables is the cluster's housekeeping (they are named stage__<asset>__<partition>).
"""
from __future__ import annotations

import hashlib
import re
import uuid
from contextlib import contextmanager
from typing import Iterator, Sequence

import polars as pl
import psycopg2
import psycopg2.extras

from music_feedback.io.chunks import FrameChunks
from music_feedback.warehouse.port import Warehouse, WarehouseError
from music_feedback.warehouse.redshift_types import CHUNK_ROWS, PG_DTYPES, TIMEOUT_VAR
from music_feedback.warehouse.stage import StageSession

UPLOAD_BATCH_ROWS = 5_000  # rows a statement of an upload carries
MAX_NAME = 63  # PostgreSQL's identifier limit (Redshift's is 127): a name is never silently truncated
STAGE_SCHEMA_VAR = "MUSIC_FEEDBACK_REDSHIFT_STAGE_SCHEMA"
_PG_TYPES = {pl.Boolean: "BOOLEAN", pl.Int8: "SMALLINT", pl.Int16: "SMALLINT", pl.Int32: "INTEGER",
             pl.Int64: "BIGINT", pl.UInt8: "SMALLINT", pl.UInt16: "INTEGER", pl.UInt32: "BIGINT",
             pl.Float32: "REAL", pl.Float64: "DOUBLE PRECISION", pl.Date: "DATE", pl.Utf8: "VARCHAR(65535)",
             pl.Categorical: "VARCHAR(65535)"}
# A trailing ORDER BY of plain columns: what the stream reads the kept table back in (a table has no order).
_ORDER_BY = re.compile(r"\s+ORDER\s+BY\s+((?:[A-Za-z_][A-Za-z0-9_.]*(?:\s+(?:ASC|DESC))?"
                       r"(?:\s+NULLS\s+(?:FIRST|LAST))?\s*,\s*)*[A-Za-z_][A-Za-z0-9_.]*"
                       r"(?:\s+(?:ASC|DESC))?(?:\s+NULLS\s+(?:FIRST|LAST))?)\s*$", re.I)


def _name(name: str) -> str:
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name) or len(name) > MAX_NAME:
        raise ValueError(f"not a stage table name: {name!r}")
    return name


def check_schema(schema: str | None) -> str | None:
    """A stage schema's name as given (None: the connection's default schema), or a WarehouseError."""
    if schema is not None and not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", schema):
        raise WarehouseError(f"{STAGE_SCHEMA_VAR}={schema!r} is not a schema name (lower-case letters, digits "
                             "and _, starting with a letter or _)")
    return schema


def stage_table(asset_path: Sequence[str], partition: str | None) -> str:
    """The table a stage's output is kept as: stage__<asset path>__<partition>, lower-case, other characters
    as _; a name past MAX_NAME keeps its head and a hash of the whole, so two outputs never share one."""
    parts = [*asset_path, *([partition] if partition else [])]
    name = "stage__" + "__".join(re.sub(r"[^a-z0-9]+", "_", p.lower()).strip("_") for p in parts)
    if len(name) > MAX_NAME:
        digest = hashlib.sha1("\x00".join(parts).encode()).hexdigest()[:10]
        name = f"{name[:MAX_NAME - 11]}_{digest}"
    return name


def _snippet(sql: str) -> str:
    return " ".join(sql.split())[:200]


def _pg_type(name: str, dtype) -> str:
    if isinstance(dtype, pl.Datetime):
        return "TIMESTAMPTZ" if dtype.time_zone else "TIMESTAMP"
    base = dtype.base_type() if hasattr(dtype, "base_type") else dtype
    if base in _PG_TYPES:
        return _PG_TYPES[base]
    raise WarehouseError(f"column {name} of an upload has dtype {dtype}, which the Redshift stage does not map: "
                         f"cast it to one of {', '.join(sorted(str(t) for t in _PG_TYPES))} or a Datetime")


class RedshiftStageSession(StageSession):
    def __init__(self, warehouse: Warehouse):  # the Redshift adapter: its connection and settings
        self._wh = warehouse
        self._describe = warehouse.describe()
        self._dtypes, self._timeout_var, self.chunk_rows = PG_DTYPES, TIMEOUT_VAR, CHUNK_ROWS
        self._temps: set[str] = set()  # the session's TEMP tables: only these are ever replaced by name
        self._stream_open: Iterator | None = None  # an output's chunks not yet read to the end
        self.schema: str | None = check_schema(warehouse.stage_schema)
        self._conn = warehouse._connect()
        try:
            with self._guard("SELECT current_schema()"), self._conn.cursor() as cur:
                cur.execute("SELECT current_schema()")
                default = cur.fetchone()[0]
        except BaseException:
            self._conn.close()
            raise
        self.schema = self.schema or default
        if not self.schema:
            self._conn.close()
            raise WarehouseError(f"{self._describe}: the connection has no default schema to keep stage outputs "
                                 f"in: set {STAGE_SCHEMA_VAR}")

    def close(self) -> None:
        self._end_stream()
        self._conn.close()  # and with it the session's TEMP tables

    # --- errors -------------------------------------------------------------------------------------------
    @contextmanager
    def _guard(self, sql: str) -> Iterator[None]:
        """psycopg2's errors as WarehouseErrors; a failed transaction is rolled back, autocommit restored."""
        try:
            yield
        except psycopg2.Error as exc:
            self._abort()
            raise self._error(exc, sql) from None

    def _abort(self) -> None:
        conn = self._conn
        if not conn.closed and not conn.autocommit:
            try:
                conn.rollback()
                conn.autocommit = True
            except psycopg2.Error:
                pass

    def _error(self, exc: psycopg2.Error, sql: str) -> WarehouseError:
        """The error as what to change, with the statement's head."""
        text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        low = text.lower()
        what = _snippet(sql)
        if isinstance(exc, psycopg2.errors.QueryCanceled) or "statement timeout" in low:
            return WarehouseError(
                f"{self._describe}: the statement ran past {self._wh.query_timeout_s:g} s and was cancelled; raise "
                f"{self._timeout_var} or make the stage cheaper: {what}")
        if isinstance(exc, psycopg2.errors.DiskFull) or "disk full" in low or "no space left" in low:
            return WarehouseError(
                f"{self._describe} ran out of disk for the stage ({text}): give the cluster more storage (more "
                "nodes: its node count, NumberOfNodes; or a node type with more storage per node, e.g. RA3 with "
                f"managed storage), or drop old stage__* tables in schema {self.schema}: {what}")
        if isinstance(exc, psycopg2.errors.OutOfMemory) or "out of memory" in low or "memory limit" in low:
            return WarehouseError(
                f"{self._describe} ran out of memory for the stage ({text}): give the query more memory (a WLM "
                "queue with more memory per slot, or SET wlm_query_slot_count for the batch's user), or more "
                f"nodes / a larger node type: {what}")
        if isinstance(exc, psycopg2.errors.UndefinedColumn):
            return WarehouseError(f"{self._describe}: a column the query reads is missing: {text}: {what}")
        if isinstance(exc, psycopg2.errors.InvalidSchemaName):
            return WarehouseError(f"{self._describe}: {text}: create schema {self.schema} (or set "
                                  f"{STAGE_SCHEMA_VAR} to one the batch's user may create tables in)")
        if isinstance(exc, psycopg2.errors.InsufficientPrivilege):
            return WarehouseError(f"{self._describe}: {text}: the batch's user needs CREATE on schema "
                                  f"{self.schema} ({STAGE_SCHEMA_VAR}) and TEMP on the database: {what}")
        if isinstance(exc, psycopg2.OperationalError) or isinstance(exc, psycopg2.InterfaceError):
            return WarehouseError(f"{self._describe}: the connection failed during the stage: {text}")
        return WarehouseError(f"{self._describe}: the query failed: {text}: {what}")

    def _execute(self, sql: str, params=None) -> None:
        self._end_stream()
        with self._guard(sql), self._conn.cursor() as cur:
            cur.execute(sql, params)

    # --- the port ---------------------------------------------------------------------------------------
    def upload(self, name: str, frame: pl.DataFrame) -> None:
        """A TEMP table of the frame, inserted UPLOAD_BATCH_ROWS rows a statement (execute_values). At large
        scale this is the wrong way in: write the frame to S3 as Parquet and COPY it (module docstring)."""
        name = _name(name)
        columns = ", ".join(f'"{c}" {_pg_type(c, t)}' for c, t in frame.schema.items())
        self._drop_temp(name)
        self._execute(f"CREATE TEMP TABLE {name} ({columns})")
        self._temps.add(name)
        if frame.height == 0:
            return
        insert = f"INSERT INTO {name} ({', '.join(f'{chr(34)}{c}{chr(34)}' for c in frame.columns)}) VALUES %s"
        with self._guard(insert), self._conn.cursor() as cur:
            for part in frame.iter_slices(UPLOAD_BATCH_ROWS):
                psycopg2.extras.execute_values(cur, insert, part.rows(), page_size=UPLOAD_BATCH_ROWS)

    def create(self, name: str, sql: str) -> None:
        name = _name(name)
        self._drop_temp(name)
        self._execute(f"CREATE TEMP TABLE {name} AS {sql}")
        self._temps.add(name)

    def _drop_temp(self, name: str) -> None:
        """Only a TEMP table this session made: a bare name could otherwise be a warehouse table."""
        if name in self._temps:
            self._execute(f"DROP TABLE {name}")
            self._temps.discard(name)

    def fetch(self, sql: str) -> pl.DataFrame:
        frames = list(self._stream(sql))
        return pl.concat(frames) if len(frames) > 1 else frames[0]

    def output(self, sql: str, asset_path: Sequence[str], partition: str) -> FrameChunks:
        """`sql`'s rows kept as the stage's table (replaced in one transaction), streamed back for the IO
        manager through a server-side cursor in the order of `sql`'s trailing ORDER BY, if any. At 1000x the
        hand-off to the IO manager should be UNLOAD to its prefix rather than this stream (module docstring)."""
        table = self._qualified(stage_table(asset_path, partition))
        out = FrameChunks(())

        def chunks():  # kept when the IO manager writes: a stage's outputs are written one after another
            self._keep(sql, table)
            order = _ORDER_BY.search(sql)
            read = f"SELECT * FROM {table}"
            if order:  # the columns by their own names: the kept table has no query aliases
                read += " ORDER BY " + re.sub(r"\b[A-Za-z_][A-Za-z0-9_]*\.", "", order.group(1))
            out.schema = pl.DataFrame(schema=self._schema_of(f"SELECT * FROM {table} LIMIT 0")).to_arrow().schema
            yield from self._stream(read, empty=False)
        out.chunks = chunks()
        return out

    def stored(self, asset_path: Sequence[str], partition: str, location: str) -> str:
        """The Redshift table `output` kept the stage in (what the IO manager has at `location` is the same
        rows, for the Python stages)."""
        table = stage_table(asset_path, partition)
        sql = "SELECT COUNT(*) FROM pg_catalog.pg_tables WHERE schemaname = %s AND tablename = %s"
        self._end_stream()
        with self._guard(sql), self._conn.cursor() as cur:
            cur.execute(sql, (self.schema, table))
            found = cur.fetchone()[0]
        if not found:
            raise FileNotFoundError(
                f"asset {'/'.join(asset_path)} partition {partition} has no stage table {self.schema}.{table} in "
                f"{self._describe}: materialize {'/'.join(asset_path)} for {partition} on this warehouse first "
                f"(its file at {location} alone is not enough: the stages read the warehouse's table)")
        return self._qualified(table)

    # --- helpers ------------------------------------------------------------------------------------------
    def _qualified(self, table: str) -> str:
        return f'"{self.schema}".{table}'

    def _keep(self, sql: str, table: str) -> None:
        """CREATE TABLE under a fresh name, then DROP the old one and RENAME the new one in, one transaction:
        readers see the old rows or the new ones, and a failure leaves no half-written table behind."""
        self._end_stream()
        fresh = f"stage_new_{uuid.uuid4().hex[:16]}"
        final = table.rsplit(".", 1)[1]
        statement = f'CREATE TABLE "{self.schema}".{fresh} AS {sql}'
        conn = self._conn
        with self._guard(statement):
            conn.autocommit = False
            with conn.cursor() as cur:
                cur.execute(statement)
                cur.execute(f"DROP TABLE IF EXISTS {table}")
                cur.execute(f'ALTER TABLE "{self.schema}".{fresh} RENAME TO {final}')
            conn.commit()
            conn.autocommit = True

    def _schema_of(self, sql: str) -> dict:
        self._end_stream()
        with self._guard(sql), self._conn.cursor() as cur:
            cur.execute(sql)
            return {d.name: self._dtypes.get(d.type_code, pl.Utf8) for d in cur.description}

    def _end_stream(self) -> None:
        """Close an output's stream the IO manager left unfinished (Redshift allows one open cursor a
        session, and its transaction would hold the next statement)."""
        stream, self._stream_open = self._stream_open, None
        if stream is not None:
            stream.close()

    def _stream(self, sql: str, empty: bool = True) -> Iterator[pl.DataFrame]:
        """`sql`'s rows in frames of `chunk_rows`, through a server-side cursor of the session's connection;
        with `empty`, one empty frame of the columns when there is no row. Without it (an output, read later
        by the IO manager), the stream is the session's open one until read to its end."""
        self._end_stream()
        gen = self._rows(sql, empty)
        if not empty:
            self._stream_open = gen
        return gen

    def _rows(self, sql: str, empty: bool) -> Iterator[pl.DataFrame]:
        conn = self._conn
        try:
            with self._guard(sql):
                conn.autocommit = False  # a named (server-side) cursor needs a transaction
                with conn.cursor(name=f"music_feedback_stage_{uuid.uuid4().hex[:12]}") as cur:
                    cur.itersize = self.chunk_rows
                    cur.execute(sql)
                    schema, sent = None, False
                    while True:
                        rows = cur.fetchmany(self.chunk_rows)
                        if schema is None:
                            schema = {d.name: self._dtypes.get(d.type_code, pl.Utf8) for d in cur.description}
                        if not rows:
                            break
                        sent = True
                        yield pl.DataFrame(rows, schema=schema, orient="row")
                conn.commit()
                conn.autocommit = True
            if not sent and empty:
                yield pl.DataFrame(schema=schema)
        finally:
            self._abort()  # closed before its end (GeneratorExit): the cursor's transaction goes
