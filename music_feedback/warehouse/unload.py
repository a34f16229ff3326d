"""Big extracts on Redshift: UNLOAD the query to S3 as Parquet with a manifest, then read the listed files.

Every slice writes its own files in parallel, so the rows never funnel through the leader node and the
psycopg2 cursor; each run writes under its own prefix, so two runs never read each other's files.
"""
from __future__ import annotations

import io
import json
import uuid
from urllib.parse import urlparse

import polars as pl

from music_feedback.warehouse.port import WarehouseError


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


def read_manifest(manifest_uri: str, s3) -> pl.DataFrame:
    """The frame of every file the manifest lists (an empty manifest: an empty frame)."""
    def get(uri: str) -> bytes:
        parsed = urlparse(uri)
        try:
            return s3.get_object(Bucket=parsed.netloc, Key=parsed.path.lstrip("/"))["Body"].read()
        except Exception as exc:  # botocore's errors: name the object the batch could not read
            raise WarehouseError(f"the UNLOAD output {uri} cannot be read: {exc}") from None

    entries = json.loads(get(manifest_uri)).get("entries", [])
    frames = [pl.read_parquet(io.BytesIO(get(e["url"]))) for e in entries]
    return pl.concat(frames, how="vertical_relaxed") if frames else pl.DataFrame()


def unload_and_read(warehouse, sql: str) -> pl.DataFrame:
    if not warehouse.unload_s3_uri or not warehouse.unload_iam_role:
        raise WarehouseError("the extract is over MUSIC_FEEDBACK_REDSHIFT_UNLOAD_ROWS rows but "
                             "MUSIC_FEEDBACK_REDSHIFT_UNLOAD_S3_URI or MUSIC_FEEDBACK_REDSHIFT_UNLOAD_IAM_ROLE is unset")
    import boto3
    prefix = run_prefix(warehouse.unload_s3_uri)
    warehouse.execute(unload_statement(sql, prefix, warehouse.unload_iam_role))
    return read_manifest(prefix + "manifest", boto3.client("s3", region_name=warehouse.region_name))
