"""AWS adapter of the warehouse: Redshift through dagster-aws's RedshiftClientResource (psycopg2).

Small reads stream through a server-side cursor into polars frames typed as the DuckDB adapter types them.
A cursor's result is materialised on Redshift's leader node, so when an UNLOAD location is configured, an
extract above `unload_threshold_rows` goes through UNLOAD to S3 Parquet instead (see unload.py; on by
default, MUSIC_FEEDBACK_REDSHIFT_UNLOAD=off turns it off): every slice writes its files in parallel, and
the batch reads them concurrently, typed as the cursor types them.

The batch's extract, unify and filter chain run in the cluster through `stage_session()` (redshift_stage.py):
their outputs are kept as tables in `stage_schema` and streamed to the IO manager.
"""
from __future__ import annotations

import os
import re
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

import polars as pl
import psycopg2
from dagster import EnvVar
from dagster_aws.redshift import RedshiftClientResource
from pydantic import Field, PrivateAttr

from music_feedback.aws.settings import region_setting
from music_feedback.warehouse.port import Warehouse, WarehouseError
from music_feedback.warehouse.redshift_types import CHUNK_ROWS, PG_DTYPES as _DTYPES, TIMEOUT_VAR
from music_feedback.warehouse.redshift_stage import STAGE_SCHEMA_VAR, RedshiftStageSession, check_schema
from music_feedback.warehouse.unload import (DEFAULT_READERS, DEFAULT_ROWS, READERS_VAR, ROWS_VAR, S3_URI_VAR,
                                             SWITCH_VAR, check_settings, count_rows, s3_client,
                                             unload_and_read)

CONNECT_TIMEOUT_VAR = "MUSIC_FEEDBACK_REDSHIFT_CONNECT_TIMEOUT_S"
IDLE_CONNECTIONS = 8  # a held warehouse keeps this many open between reads (the service's threads)
SCHEMA_TTL_S = 300.0


class RedshiftWarehouse(Warehouse):
    redshift: RedshiftClientResource = Field(description=(
        'The Redshift connection (dagster-aws): host MUSIC_FEEDBACK_REDSHIFT_HOST, user '
        'MUSIC_FEEDBACK_REDSHIFT_USER, password MUSIC_FEEDBACK_REDSHIFT_PASSWORD(_FILE), database '
        'MUSIC_FEEDBACK_REDSHIFT_DATABASE (default dev), port MUSIC_FEEDBACK_REDSHIFT_PORT (5439), '
        'sslmode MUSIC_FEEDBACK_REDSHIFT_SSLMODE (require), connect timeout '
        'MUSIC_FEEDBACK_REDSHIFT_CONNECT_TIMEOUT_S (10).'))
    query_timeout_s: float = Field(default=600.0, description=(
        'Statement timeout of a read, in seconds (MUSIC_FEEDBACK_REDSHIFT_QUERY_TIMEOUT_S; > 0).'))
    unload: bool = Field(default=True, description=(
        'Big extracts go through UNLOAD when unload_s3_uri is set (MUSIC_FEEDBACK_REDSHIFT_UNLOAD: on, the '
        'default, or off: every read takes the cursor).'))
    unload_threshold_rows: int = Field(default=DEFAULT_ROWS, description=(
        'Extracts of more rows go through UNLOAD to S3 Parquet; 0: every extract, without counting it '
        f'first (MUSIC_FEEDBACK_REDSHIFT_UNLOAD_ROWS, {DEFAULT_ROWS}).'))
    unload_readers: int = Field(default=DEFAULT_READERS, description=(
        f'UNLOAD files read at once (MUSIC_FEEDBACK_REDSHIFT_UNLOAD_READERS, {DEFAULT_READERS}).'))
    unload_s3_uri: Optional[str] = Field(default=None, description=(
        's3://bucket/prefix/ that UNLOAD writes to; None: no UNLOAD (MUSIC_FEEDBACK_REDSHIFT_UNLOAD_S3_URI).'))
    unload_iam_role: Optional[str] = Field(default=None, description=(
        'ARN of the IAM role Redshift assumes to UNLOAD (MUSIC_FEEDBACK_REDSHIFT_UNLOAD_IAM_ROLE).'))
    region_name: str = Field(default="us-east-1", description=(
        'AWS region of the UNLOAD bucket (AWS_REGION, else AWS_DEFAULT_REGION).'))
    stage_schema: Optional[str] = Field(default=None, description=(
        'Schema the batch\'s stage outputs are kept in as tables (stage__<asset>__<partition>), which later '
        'stages read; None: the connection\'s default schema (MUSIC_FEEDBACK_REDSHIFT_STAGE_SCHEMA). The '
        'batch\'s user needs CREATE on it.'))
    extract_tables: list[str] = Field(default_factory=lambda: ["track_plays"], description=(
        'Warehouse tables whose extract may go through UNLOAD.'))
    _idle = PrivateAttr(default=None)  # hold(): connections between reads
    _lock = PrivateAttr(default_factory=threading.Lock)
    _columns = PrivateAttr(default_factory=dict)  # hold(): table -> (read at, columns)
    _s3 = PrivateAttr(default=None)

    @classmethod
    def from_env(cls, env_vars: bool = False) -> "RedshiftWarehouse":
        """The warehouse the variables describe. With `env_vars` (the Dagster set), the host, the user, the
        password and the region are `EnvVar`s that Dagster resolves at run launch: the definitions load
        without them, and a run without them fails naming the variable; the numbers are checked here."""
        env = os.environ.get
        missing = [v for v in ("MUSIC_FEEDBACK_REDSHIFT_HOST", "MUSIC_FEEDBACK_REDSHIFT_USER") if not env(v)]
        if missing and not env_vars:
            raise WarehouseError(f"the Redshift warehouse needs {' and '.join(missing)}")
        password = env("MUSIC_FEEDBACK_REDSHIFT_PASSWORD")
        secret = env("MUSIC_FEEDBACK_REDSHIFT_PASSWORD_FILE")
        if secret:
            try:
                password = Path(secret).read_text().strip()
            except OSError as exc:
                raise WarehouseError(f"MUSIC_FEEDBACK_REDSHIFT_PASSWORD_FILE={secret} cannot be read: "
                                     f"{exc.strerror}") from None
        numbers = {}
        for var, default in ((TIMEOUT_VAR, "600"), ("MUSIC_FEEDBACK_REDSHIFT_PORT", "5439"),
                             (ROWS_VAR, str(DEFAULT_ROWS)), (CONNECT_TIMEOUT_VAR, "10"),
                             (READERS_VAR, str(DEFAULT_READERS))):
            raw = env(var, default) or default
            try:
                numbers[var] = float(raw)
            except ValueError:
                raise WarehouseError(f"{var} must be a number, got {raw!r}") from None
            if numbers[var] < 0 or (numbers[var] == 0 and var != ROWS_VAR):
                raise WarehouseError(f"{var} must be greater than 0, got {raw!r}")
        switch = (env(SWITCH_VAR) or "").strip().lower()
        if switch not in ("", "on", "off"):
            raise WarehouseError(f"{SWITCH_VAR} must be on or off, got {env(SWITCH_VAR)!r}")
        host, user = env("MUSIC_FEEDBACK_REDSHIFT_HOST"), env("MUSIC_FEEDBACK_REDSHIFT_USER")
        region = env("AWS_REGION", env("AWS_DEFAULT_REGION", "us-east-1"))
        if env_vars:
            host, user = EnvVar("MUSIC_FEEDBACK_REDSHIFT_HOST"), EnvVar("MUSIC_FEEDBACK_REDSHIFT_USER")
            region = region_setting()
            if password and not secret:  # the secret stays out of the UI's resource page
                password = EnvVar("MUSIC_FEEDBACK_REDSHIFT_PASSWORD")
        client = RedshiftClientResource(
            host=host, port=int(numbers["MUSIC_FEEDBACK_REDSHIFT_PORT"]),
            user=user, password=password or None,
            database=env("MUSIC_FEEDBACK_REDSHIFT_DATABASE", "dev"),
            sslmode=env("MUSIC_FEEDBACK_REDSHIFT_SSLMODE", "require"), autocommit=True,
            connect_timeout=max(1, round(numbers[CONNECT_TIMEOUT_VAR])))
        uri = env(S3_URI_VAR)
        stage_schema = check_schema((env(STAGE_SCHEMA_VAR) or "").strip() or None)
        if switch != "off":  # asked for by name, by a threshold, or by a location: it must be able to run
            why = (f"{SWITCH_VAR}=on" if switch == "on" else f"{ROWS_VAR} is set" if env(ROWS_VAR)
                   else f"{S3_URI_VAR} is set" if uri else None)
            if why:
                check_settings(uri, env("MUSIC_FEEDBACK_REDSHIFT_UNLOAD_IAM_ROLE"), why)
        return cls(redshift=client, query_timeout_s=numbers[TIMEOUT_VAR], unload=switch != "off",
                   unload_threshold_rows=int(numbers[ROWS_VAR]), unload_readers=int(numbers[READERS_VAR]),
                   unload_s3_uri=uri,
                   unload_iam_role=env("MUSIC_FEEDBACK_REDSHIFT_UNLOAD_IAM_ROLE"),
                   region_name=region, stage_schema=stage_schema)

    def describe(self) -> str:
        r = self.redshift
        return f"Redshift warehouse {r.user}@{r.host}:{r.port}/{r.database}"

    def _connect(self):
        """A psycopg2 connection with the client resource's own arguments, and the statement timeout."""
        try:
            conn = psycopg2.connect(**self.redshift.get_client().conn_args)
        except psycopg2.OperationalError as exc:
            text = str(exc).strip()
            if "password" in text or "authentication" in text or "role" in text:
                fix = "MUSIC_FEEDBACK_REDSHIFT_USER and MUSIC_FEEDBACK_REDSHIFT_PASSWORD(_FILE)"
            elif "database" in text:
                fix = "MUSIC_FEEDBACK_REDSHIFT_DATABASE"
            elif "timeout expired" in text:
                fix = (f"MUSIC_FEEDBACK_REDSHIFT_HOST and MUSIC_FEEDBACK_REDSHIFT_PORT (no answer within "
                       f"{CONNECT_TIMEOUT_VAR}={self.redshift.connect_timeout} s: a security group or VPC route?)")
            else:
                fix = "MUSIC_FEEDBACK_REDSHIFT_HOST and MUSIC_FEEDBACK_REDSHIFT_PORT (and the network path)"
            raise WarehouseError(f"{self.describe()} refused the connection: {text.splitlines()[0]}; "
                                 f"check {fix}") from None
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"SET statement_timeout TO {int(self.query_timeout_s * 1000)}")
        return conn

    def fetch(self, sql: str) -> pl.DataFrame:
        if self.unloads(sql):
            return unload_and_read(self, sql)
        return self._stream(sql)

    def unloads(self, sql: str) -> bool:
        """Whether `sql` goes through UNLOAD: an extract, with a location, above the threshold."""
        if not (self.unload and self.unload_s3_uri and self._is_extract(sql)):
            return False
        return self.unload_threshold_rows == 0 or count_rows(self, sql) > self.unload_threshold_rows

    def s3_client(self):
        """The S3 client that reads UNLOAD output (one per warehouse; boto3 clients are thread-safe)."""
        if self._s3 is None:
            self._s3 = s3_client(self.region_name, self.unload_readers)
        return self._s3

    def _is_extract(self, sql: str) -> bool:
        """A read of a plays table (however the query is laid out or quoted): only those grow with traffic."""
        return any(re.search(rf'\bfrom\s+"?{re.escape(t)}\b', sql, re.I) for t in self.extract_tables)

    def hold(self) -> None:
        self._idle = []

    @contextmanager
    def stage_session(self) -> Iterator["RedshiftStageSession"]:
        """The batch's stages run in the cluster on one connection (redshift_stage.py); its TEMP tables go
        with it, the stage outputs stay as tables in `stage_schema`."""
        session = RedshiftStageSession(self)
        try:
            yield session
        finally:
            session.close()

    @contextmanager
    def _connection(self) -> Iterator:
        """A fresh connection, closed after; when held, an idle one, returned after unless the read failed
        (a failed transaction or a dropped link is not worth repairing: the next read opens a new one)."""
        idle = self._idle
        with self._lock:
            conn = idle.pop() if idle else None
        conn = conn or self._connect()
        try:
            yield conn
        except BaseException:
            conn.close()
            raise
        if idle is not None and not conn.closed and len(idle) < IDLE_CONNECTIONS:
            with self._lock:
                idle.append(conn)
        else:
            conn.close()

    def _stream(self, sql: str) -> pl.DataFrame:
        with self._connection() as conn:
            return self._stream_on(conn, sql)

    def _stream_on(self, conn, sql: str) -> pl.DataFrame:
        try:
            conn.autocommit = False  # a named (server-side) cursor needs a transaction
            with conn.cursor(name="music_feedback_fetch") as cur:
                cur.itersize = CHUNK_ROWS
                cur.execute(sql)
                chunks, schema = [], None
                while True:
                    rows = cur.fetchmany(CHUNK_ROWS)
                    if schema is None:
                        schema = {d.name: _DTYPES.get(d.type_code, pl.Utf8) for d in cur.description}
                    if not rows:
                        break
                    chunks.append(pl.DataFrame(rows, schema=schema, orient="row"))
            conn.commit()
            conn.autocommit = True  # as _connect left it, for the next read of a held connection
        except psycopg2.errors.QueryCanceled:
            raise WarehouseError(f"{self.describe()}: the query ran past {self.query_timeout_s:g} s and was "
                                 f"cancelled ({TIMEOUT_VAR}); raise it or make the query cheaper: "
                                 f"{' '.join(sql.split())[:200]}") from None
        except psycopg2.errors.UndefinedColumn as exc:
            raise WarehouseError(f"{self.describe()}: a column the query reads is missing: "
                                 f"{str(exc).splitlines()[0]}") from None
        except psycopg2.Error as exc:
            raise WarehouseError(f"{self.describe()}: the query failed: {str(exc).splitlines()[0]}") from None
        return pl.concat(chunks) if chunks else pl.DataFrame(schema=schema)

    def schema_of(self, sql: str) -> pl.Schema:
        """The columns and dtypes `sql` gives through the cursor, from an empty result of it."""
        return self._stream(f"SELECT * FROM ({sql}) AS q LIMIT 0").schema

    def execute(self, sql: str) -> None:
        """A statement without rows (UNLOAD), through the client resource, under the timeout."""
        try:
            self.redshift.get_client().execute_query(
                f"SET statement_timeout TO {int(self.query_timeout_s * 1000)}; {sql}")
        except psycopg2.errors.QueryCanceled:
            raise WarehouseError(f"{self.describe()}: the statement ran past {self.query_timeout_s:g} s "
                                 f"({TIMEOUT_VAR}); raise it: {' '.join(sql.split())[:200]}") from None
        except psycopg2.Error as exc:
            raise WarehouseError(f"{self.describe()}: {str(exc).splitlines()[0]} in "
                                 f"{' '.join(sql.split())[:200]}") from None

    def columns_of(self, table: str) -> set[str]:
        if self._idle is not None:  # held: the columns are read again after SCHEMA_TTL_S
            known = self._columns.get(table)
            if known is None or time.monotonic() - known[0] > SCHEMA_TTL_S:
                known = self._columns[table] = (time.monotonic(), self._read_columns(table))
            return known[1]
        return self._read_columns(table)

    def _read_columns(self, table: str) -> set[str]:
        try:
            with self._connection() as conn, conn.cursor() as cur:
                cur.execute("SELECT column_name FROM information_schema.columns WHERE table_name = %s "
                            "AND table_schema = ANY (current_schemas(false))", (table,))
                return {r[0] for r in cur.fetchall()}
        except psycopg2.errors.QueryCanceled:
            raise WarehouseError(f"{self.describe()}: reading the columns of '{table}' ran past "
                                 f"{self.query_timeout_s:g} s ({TIMEOUT_VAR})") from None
        except psycopg2.Error as exc:
            raise WarehouseError(f"{self.describe()}: the columns of '{table}' cannot be read: "
                                 f"{str(exc).splitlines()[0]}") from None
