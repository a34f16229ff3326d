"""The lake on S3, with its partitions in the Glue catalog.

Each (day, marketplace) is one object, and one PUT replaces an object whole, so a reader never gets half a
file; keys of the day that the new export no longer has are deleted after the new ones are in place.
Partitions are registered with BatchCreatePartition, 100 at a time; one that exists already counts as done.
"""
from __future__ import annotations

import io
from typing import Optional

import boto3
import polars as pl
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import Field, PrivateAttr

from music_feedback.lake.catalog import table_input
from music_feedback.lake.port import PART, Lake, LakeError, parquet_bytes

GLUE_BATCH = 100


class S3Lake(Lake):
    bucket: str = Field(description='S3 bucket of the lake (MUSIC_FEEDBACK_S3_BUCKET).')
    prefix: str = Field(default="lake", description=(
        'Key prefix of the lake in the bucket (MUSIC_FEEDBACK_S3_LAKE_PREFIX).'))
    region_name: str = Field(default="us-east-1", description=(
        'Region of S3 and Glue (AWS_REGION, else AWS_DEFAULT_REGION).'))
    endpoint_url: Optional[str] = Field(default=None, description=(
        "S3 and Glue endpoint; None: boto3's own (AWS_ENDPOINT_URL_S3 / _GLUE, else the region's)."))
    glue_database: Optional[str] = Field(default=None, description=(
        'Glue database that catalogs the lake tables; None: no catalog (MUSIC_FEEDBACK_GLUE_DATABASE).'))
    _clients = PrivateAttr(default_factory=dict)

    def client(self, service: str):
        if service not in self._clients:
            self._clients[service] = boto3.session.Session().client(
                service, region_name=self.region_name, endpoint_url=self.endpoint_url)
        return self._clients[service]

    def _key(self, table: str, run_date: str, market: str | None = None) -> str:
        base = f"{self.prefix.strip('/')}/{table}/run_date={run_date}/".lstrip("/")
        return base if market is None else f"{base}marketplace={market}/{PART}"

    def replace_day(self, table: str, run_date: str, parts: dict[str, pl.DataFrame]) -> list[str]:
        s3 = self.client("s3")
        try:
            old = {o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self._key(table, run_date)) for o in page.get("Contents", [])}
            keys = []
            for market, frame in parts.items():
                key = self._key(table, run_date, market)
                s3.put_object(Bucket=self.bucket, Key=key, Body=parquet_bytes(frame))
                keys.append(key)
            stale = sorted(old - set(keys))
            for i in range(0, len(stale), 1000):
                s3.delete_objects(Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in stale[i:i + 1000]]})
        except ClientError as exc:
            err = exc.response.get("Error", {})
            raise LakeError(f"S3 bucket {self.bucket!r} refused the export of {table} for {run_date}: "
                            f"{err.get('Code')} {err.get('Message', '')}") from None
        except BotoCoreError as exc:
            raise LakeError(f"S3 at {self.endpoint_url or self.region_name} cannot be reached: {exc}") from None
        if self.glue_database and parts:
            self._register(table, run_date, list(parts), next(iter(parts.values())).schema)
        return [f"s3://{self.bucket}/{k}" for k in keys]

    def _register(self, table: str, run_date: str, markets: list[str], schema: pl.Schema) -> None:
        glue = self.client("glue")
        try:
            storage = glue.get_table(DatabaseName=self.glue_database, Name=table)["Table"]["StorageDescriptor"]
        except glue.exceptions.EntityNotFoundException:
            storage = self._create_table(table, schema)
        except ClientError as exc:
            raise LakeError(f"Glue table {self.glue_database}.{table} cannot be read "
                            f"({exc.response.get('Error', {}).get('Code')})") from None
        inputs = [{"Values": [run_date, m], "StorageDescriptor": {
            **{k: v for k, v in storage.items() if k != "Location"},
            "Location": f"s3://{self.bucket}/{self._key(table, run_date, m).rsplit('/', 1)[0]}/"}} for m in markets]
        for i in range(0, len(inputs), GLUE_BATCH):
            errors = glue.batch_create_partition(DatabaseName=self.glue_database, TableName=table,
                                                 PartitionInputList=inputs[i:i + GLUE_BATCH]).get("Errors", [])
            real = [e for e in errors if e.get("ErrorDetail", {}).get("ErrorCode") != "AlreadyExistsException"]
            if real:
                detail = real[0]["ErrorDetail"]
                raise LakeError(f"Glue refused {len(real)} partition(s) of {self.glue_database}.{table}: "
                                f"{detail.get('ErrorCode')} {detail.get('ErrorMessage', '')}")

    def _create_table(self, table: str, schema: pl.Schema) -> dict:
        glue = self.client("glue")
        base = self.prefix.strip("/")
        location = f"s3://{self.bucket}/{base + '/' if base else ''}{table}/"
        spec = table_input(table, location, schema)
        try:
            glue.create_table(DatabaseName=self.glue_database, TableInput=spec)
        except glue.exceptions.AlreadyExistsException:
            pass  # another run registered it first
        except ClientError as exc:
            raise LakeError(f"Glue table {self.glue_database}.{table} cannot be created "
                            f"({exc.response.get('Error', {}).get('Code')}): does the Glue database "
                            f"{self.glue_database!r} exist (MUSIC_FEEDBACK_GLUE_DATABASE)?") from None
        return spec["StorageDescriptor"]

    def read_day(self, table: str, run_date: str) -> pl.DataFrame:
        s3 = self.client("s3")
        frames = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self._key(table, run_date)):
            for obj in page.get("Contents", []):
                market = obj["Key"].split("marketplace=", 1)[1].split("/", 1)[0]
                body = s3.get_object(Bucket=self.bucket, Key=obj["Key"])["Body"].read()
                frames.append(pl.read_parquet(io.BytesIO(body)).with_columns(pl.lit(market).alias("marketplace")))
        return pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" + (f" (Glue {self.glue_database})" if self.glue_database else "")
