"""Big extracts on Redshift: UNLOAD the query to S3 as Parquet with a manifest, then read the listed files.

A server-side cursor on Redshift materialises the whole result on the leader node before the first row
leaves it; UNLOAD has every slice write its own files in parallel, and the batch reads those files
concurrently (a bounded thread pool: S3 GETs and Parquet decoding both release the GIL). It is the default
for extracts whenever an UNLOAD location is configured; each run writes under its own prefix, so two runs
never read each other's files.
"""
from __future__ import annotations

import io
import json
import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlparse

import boto3
from botocore.config import Config
import polars as pl

from music_feedback.warehouse.port import WarehouseError

ROWS_VAR = "MUSIC_FEEDBACK_REDSHIFT_UNLOAD_ROWS"
S3_URI_VAR = "MUSIC_FEEDBACK_REDSHIFT_UNLOAD_S3_URI"
ROLE_VAR = "MUSIC_FEEDBACK_REDSHIFT_UNLOAD_IAM_ROLE"
SWITCH_VAR = "MUSIC_FEEDBACK_REDSHIFT_UNLOAD"  # on (default when the S3 URI is set) | off
READERS_VAR = "MUSIC_FEEDBACK_REDSHIFT_UNLOAD_READERS"
DEFAULT_ROWS = 100_000  # extracts above this many rows unload; 0: every extract unloads, uncounted
DEFAULT_READERS = 8


def check_settings(s3_uri: str | None, iam_role: str | None, why: str = f"{ROWS_VAR} is set") -> None:
    """At start-up, not when the first big day arrives: UNLOAD needs somewhere to write and a role to write as."""
    problems = []
    if not s3_uri:
        problems.append(f"{S3_URI_VAR} (s3://bucket/prefix/ that UNLOAD writes to) is unset")
    elif not re.fullmatch(r"s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/.*)?", s3_uri):
        problems.append(f"{S3_URI_VAR}={s3_uri!r} is not an s3://bucket/prefix/ URI")
    if not iam_role:
        problems.append(f"{ROLE_VAR} (the ARN of a role the cluster may assume to write there) is unset")
    elif not re.fullmatch(r"arn:aws[a-z\-]*:iam::\d{12}:role/.+", iam_role):
        problems.append(f"{ROLE_VAR}={iam_role!r} is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)")
    if problems:
        raise WarehouseError(f"{why}, so big extracts go through UNLOAD ({SWITCH_VAR}=off turns it off), but "
                             + "; ".join(problems))


def count_rows(warehouse, sql: str) -> int:
    return int(warehouse._stream(f"SELECT COUNT(*) AS n FROM ({sql}) AS q")["n"][0])


def quote_literal(sql: str) -> str:
    """The query as the single-quoted literal UNLOAD takes: quotes doubled, backslashes escaped."""
    return "'" + sql.replace("\\", "\\\\").replace("'", "''") + "'"


def unload_statement(sql: str, s3_prefix: str, iam_role: str) -> str:
    return (f"UNLOAD ({quote_literal(' '.join(sql.split()))}) TO '{s3_prefix}' IAM_ROLE '{iam_role}' "
            "FORMAT AS PARQUET MANIFEST ALLOWOVERWRITE")


def run_prefix(base_uri: str) -> str:
    return base_uri.rstrip("/") + f"/{uuid.uuid4().hex}/part_"


def conform(frame: pl.DataFrame, schema: pl.Schema | dict | None) -> pl.DataFrame:
    """The frame with the cursor's columns and dtypes (Parquet's physical types differ: timestamp units,
    large strings), so a day read through UNLOAD equals the same day read through the cursor."""
    if schema is None:
        return frame
    if not frame.columns:  # an empty manifest
        return pl.DataFrame(schema=schema)
    missing = [c for c in schema if c not in frame.columns]
    if missing:
        raise WarehouseError(f"the UNLOAD output lacks column(s) {', '.join(missing)} that the query selects")
    return frame.select([pl.col(c).cast(t) for c, t in schema.items()])


def read_manifest(manifest_uri: str, s3, schema: pl.Schema | dict | None = None,
                  workers: int = DEFAULT_READERS) -> pl.DataFrame:
    """The frame of every file the manifest lists, in the manifest's order, typed as `schema` when given.
    The files are fetched and decoded concurrently, at most `workers` at a time."""
    def get(uri: str) -> bytes:
        parsed = urlparse(uri)
        try:
            return s3.get_object(Bucket=parsed.netloc, Key=parsed.path.lstrip("/"))["Body"].read()
        except Exception as exc:  # botocore's errors: name the object the batch could not read
            raise WarehouseError(f"the UNLOAD output {uri} cannot be read: {exc}") from None

    def read(uri: str) -> pl.DataFrame:
        return pl.read_parquet(io.BytesIO(get(uri)))

    entries = json.loads(get(manifest_uri)).get("entries", [])
    urls = [e["url"] for e in entries]
    if len(urls) > 1 and workers > 1:
        with ThreadPoolExecutor(max_workers=min(workers, len(urls)), thread_name_prefix="unload-read") as pool:
            frames = list(pool.map(read, urls))
    else:
        frames = [read(u) for u in urls]
    frame = pl.concat(frames, how="vertical_relaxed") if frames else pl.DataFrame()
    return conform(frame, schema)


def unload_and_read(warehouse, sql: str) -> pl.DataFrame:
    check_settings(warehouse.unload_s3_uri, warehouse.unload_iam_role, f"{S3_URI_VAR} is set")
    schema = warehouse.schema_of(sql)  # an empty result: cheap next to the UNLOAD
    prefix = run_prefix(warehouse.unload_s3_uri)
    warehouse.execute(unload_statement(sql, prefix, warehouse.unload_iam_role))
    return read_manifest(prefix + "manifest", warehouse.s3_client(), schema, warehouse.unload_readers)


def s3_client(region_name: str, workers: int):
    """The client that reads UNLOAD output, its connection pool as wide as the readers. boto3 reads the
    endpoint from AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL (moto in the tests)."""
    return boto3.session.Session().client(
        "s3", region_name=region_name, config=Config(max_pool_connections=max(10, workers)))
