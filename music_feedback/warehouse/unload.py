"""Big extracts on Redshift: UNLOAD the query to S3 as Parquet with a manifest, then read the listed files.

Every slice writes its own files in parallel, so the rows never funnel through the leader node and the
psycopg2 cursor; each run writes under its own prefix, so two runs never read each other's files.
A PostgreSQL stand-in has no UNLOAD: there the threshold is left unset and every read takes the cursor.
"""
from __future__ import annotations

import io
import json
import re
import uuid
from urllib.parse import urlparse

import boto3
import polars as pl

from music_feedback.warehouse.port import WarehouseError

ROWS_VAR = "MUSIC_FEEDBACK_REDSHIFT_UNLOAD_ROWS"
S3_URI_VAR = "MUSIC_FEEDBACK_REDSHIFT_UNLOAD_S3_URI"
ROLE_VAR = "MUSIC_FEEDBACK_REDSHIFT_UNLOAD_IAM_ROLE"


def check_settings(s3_uri: str | None, iam_role: str | None) -> None:
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
        raise WarehouseError(f"{ROWS_VAR} is set, so big extracts go through UNLOAD, but " + "; ".join(problems))


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


def read_manifest(manifest_uri: str, s3, schema: pl.Schema | dict | None = None) -> pl.DataFrame:
    """The frame of every file the manifest lists, typed as `schema` when given."""
    def get(uri: str) -> bytes:
        parsed = urlparse(uri)
        try:
            return s3.get_object(Bucket=parsed.netloc, Key=parsed.path.lstrip("/"))["Body"].read()
        except Exception as exc:  # botocore's errors: name the object the batch could not read
            raise WarehouseError(f"the UNLOAD output {uri} cannot be read: {exc}") from None

    entries = json.loads(get(manifest_uri)).get("entries", [])
    frames = [pl.read_parquet(io.BytesIO(get(e["url"]))) for e in entries]
    frame = pl.concat(frames, how="vertical_relaxed") if frames else pl.DataFrame()
    return conform(frame, schema)


def unload_and_read(warehouse, sql: str) -> pl.DataFrame:
    check_settings(warehouse.unload_s3_uri, warehouse.unload_iam_role)
    schema = warehouse.schema_of(sql)  # an empty result: cheap next to the UNLOAD
    prefix = run_prefix(warehouse.unload_s3_uri)
    warehouse.execute(unload_statement(sql, prefix, warehouse.unload_iam_role))
    # boto3 reads the endpoint from AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL (moto in the tests).
    s3 = boto3.session.Session().client("s3", region_name=warehouse.region_name)
    return read_manifest(prefix + "manifest", s3, schema)
