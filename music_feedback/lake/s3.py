"""The lake on S3, with its partitions in the Glue catalog.

A day is replaced as a new generation, never in place:

1. every marketplace's file is written under a fresh prefix `table/run_date=D/generation=G/marketplace=M/`
   (nothing that a catalogue reader follows points there yet, so a crash here leaves an orphan, not a mix);
2. the catalogue is switched to it: the day's Glue partitions are pointed at generation G
   (BatchCreatePartition for new marketplaces, BatchUpdatePartition for the others, BatchDeletePartition for
   the ones the day no longer has; 100, 100 and 25 a call); each partition carries the generation and how
   many partitions it has, so a reader that catches the switch half-way sees two generations, or too few
   partitions, and reads the catalogue again;
3. the previous generation (and any crash leftover older than an hour) is deleted.

Readers (`read_day`) go through the catalogue: the day's partitions, then the one file each names; never a
listing or a glob of the table's prefix. Without a Glue database the catalogue is one pointer object per day
(`<prefix>/_catalog/<table>/run_date=D.json`, outside every table), replaced by a single PUT.
"""
from __future__ import annotations

import io
import json
import time
import uuid
from datetime import datetime, timezone
from typing import Optional

import boto3
import polars as pl
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import Field, PrivateAttr

from music_feedback.lake.catalog import table_input
from music_feedback.lake.port import PART, Lake, LakeError, parquet_bytes

GLUE_BATCH = 100  # BatchCreatePartition and BatchUpdatePartition take 100 partitions a call
GLUE_DELETE_BATCH = 25  # BatchDeletePartition takes 25
S3_DELETE_BATCH = 1000
GENERATION = "generation"  # partition parameter: the generation a partition belongs to
GENERATION_PARTS = "generation_partitions"  # partition parameter: how many partitions that generation has
LEFTOVER_AGE_S = 3600.0  # an unreferenced generation older than this is a crash leftover, not a writer at work
READ_ATTEMPTS = 30


def new_generation() -> str:
    """Sortable by time, unique per write."""
    return f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"


class _Moved(Exception):
    """The day changed under a reader (switch half-way, or the generation it resolved was deleted)."""


class S3Lake(Lake):
    bucket: str = Field(description='S3 bucket of the lake (MUSIC_FEEDBACK_S3_BUCKET).')
    prefix: str = Field(default="lake", description=(
        'Key prefix of the lake in the bucket (MUSIC_FEEDBACK_S3_LAKE_PREFIX).'))
    region_name: str = Field(default="us-east-1", description=(
        'Region of S3 and Glue (AWS_REGION, else AWS_DEFAULT_REGION).'))
    endpoint_url: Optional[str] = Field(default=None, description=(
        "S3 and Glue endpoint; None: boto3's own (AWS_ENDPOINT_URL_S3 / _GLUE, else the region's)."))
    glue_database: Optional[str] = Field(default=None, description=(
        'Glue database that catalogs the lake tables; None: a pointer object per day under '
        '<prefix>/_catalog/ is the catalogue (MUSIC_FEEDBACK_GLUE_DATABASE).'))
    _clients = PrivateAttr(default_factory=dict)

    def client(self, service: str):
        if service not in self._clients:
            self._clients[service] = boto3.session.Session().client(
                service, region_name=self.region_name, endpoint_url=self.endpoint_url)
        return self._clients[service]

    # -- keys -------------------------------------------------------------------------------------------
    def _base(self) -> str:
        base = self.prefix.strip("/")
        return f"{base}/" if base else ""

    def _day_key(self, table: str, run_date: str) -> str:
        return f"{self._base()}{table}/run_date={run_date}/"

    def _generation_key(self, table: str, run_date: str, generation: str) -> str:
        return f"{self._day_key(table, run_date)}{GENERATION}={generation}/"

    def _pointer_key(self, table: str, run_date: str) -> str:
        return f"{self._base()}_catalog/{table}/run_date={run_date}.json"

    def _uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def _key_of(self, location: str) -> str:
        prefix = f"s3://{self.bucket}/"
        if not location.startswith(prefix):
            raise LakeError(f"the catalogue names {location}, outside the lake bucket {self.bucket!r}")
        return location[len(prefix):]

    # -- writing ----------------------------------------------------------------------------------------
    def replace_day(self, table: str, run_date: str, parts: dict[str, pl.DataFrame]) -> list[str]:
        s3 = self.client("s3")
        generation = new_generation()
        folder = self._generation_key(table, run_date, generation)
        keys = {market: f"{folder}marketplace={market}/{PART}" for market in parts}
        try:
            for market, frame in parts.items():
                s3.put_object(Bucket=self.bucket, Key=keys[market], Body=parquet_bytes(frame))
        except ClientError as exc:
            err = exc.response.get("Error", {})
            raise LakeError(f"S3 bucket {self.bucket!r} refused the export of {table} for {run_date}: "
                            f"{err.get('Code')} {err.get('Message', '')}; the previous export of the day "
                            "is unchanged") from None
        except BotoCoreError as exc:
            raise LakeError(f"S3 at {self.endpoint_url or self.region_name} cannot be reached: {exc}; the "
                            "previous export of the day is unchanged") from None
        locations = {m: self._uri(k.rsplit("/", 1)[0] + "/") for m, k in keys.items()}
        if self.glue_database:
            schema = next(iter(parts.values())).schema if parts else None
            previous = self._switch_glue(table, run_date, generation, locations, schema)
        else:
            previous = self._switch_pointer(table, run_date, generation, sorted(parts))
        self._drop_old(table, run_date, generation, previous)
        return [self._uri(keys[m]) for m in parts]

    def _switch_pointer(self, table: str, run_date: str, generation: str, markets: list[str]) -> Optional[str]:
        s3 = self.client("s3")
        key = self._pointer_key(table, run_date)
        previous = None
        try:
            try:
                previous = json.loads(s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())["generation"]
            except s3.exceptions.NoSuchKey:
                pass
            s3.put_object(Bucket=self.bucket, Key=key, ContentType="application/json",
                          Body=json.dumps({"generation": generation, "marketplaces": markets}).encode())
        except (ClientError, BotoCoreError) as exc:
            raise LakeError(f"the lake's day pointer s3://{self.bucket}/{key} cannot be switched to the new "
                            f"export of {table} for {run_date}: {exc}; the previous export is unchanged") from None
        return previous

    def _day_partitions(self, table: str, run_date: str) -> list[dict]:
        glue = self.client("glue")
        pages = glue.get_paginator("get_partitions").paginate(
            DatabaseName=self.glue_database, TableName=table, Expression=f"run_date = '{run_date}'")
        return [p for page in pages for p in page.get("Partitions", [])
                if p.get("Values", [None])[0] == run_date]

    def _switch_glue(self, table: str, run_date: str, generation: str, locations: dict[str, str],
                     schema: Optional[pl.Schema]) -> Optional[str]:
        glue = self.client("glue")
        where = f"{self.glue_database}.{table}"
        try:
            storage = glue.get_table(DatabaseName=self.glue_database, Name=table)["Table"]["StorageDescriptor"]
        except glue.exceptions.EntityNotFoundException:
            if schema is None:
                return None  # an empty day of a table never registered: nothing to point at
            storage = self._create_table(table, schema)
        except ClientError as exc:
            raise LakeError(f"Glue table {where} cannot be read "
                            f"({exc.response.get('Error', {}).get('Code')})") from None
        try:
            current = {p["Values"][1]: p for p in self._day_partitions(table, run_date)}
        except ClientError as exc:
            raise LakeError(f"the partitions of {where} for {run_date} cannot be read "
                            f"({exc.response.get('Error', {}).get('Code')})") from None
        olds = {p.get("Parameters", {}).get(GENERATION) for p in current.values()}
        previous = olds.pop() if len(olds) == 1 else None
        params = {GENERATION: generation, GENERATION_PARTS: str(len(locations))}
        base = {k: v for k, v in storage.items() if k != "Location"}

        def partition(market: str) -> dict:
            return {"Values": [run_date, market], "Parameters": params,
                    "StorageDescriptor": {**base, "Location": locations[market]}}

        new = [m for m in locations if m not in current]
        moved = [m for m in locations if m in current]
        gone = [m for m in current if m not in locations]
        try:
            for i in range(0, len(new), GLUE_BATCH):
                errors = glue.batch_create_partition(
                    DatabaseName=self.glue_database, TableName=table,
                    PartitionInputList=[partition(m) for m in new[i:i + GLUE_BATCH]]).get("Errors", [])
                # one that exists already (another run registered it) is done: it is pointed below
                moved += [e["PartitionValues"][1] for e in errors
                          if e.get("ErrorDetail", {}).get("ErrorCode") == "AlreadyExistsException"]
                self._raise_on(errors, where, "registered", {"AlreadyExistsException"})
            for i in range(0, len(moved), GLUE_BATCH):
                errors = glue.batch_update_partition(
                    DatabaseName=self.glue_database, TableName=table,
                    Entries=[{"PartitionValueList": [run_date, m], "PartitionInput": partition(m)}
                             for m in moved[i:i + GLUE_BATCH]]).get("Errors", [])
                self._raise_on(errors, where, "pointed at the new export")
            for i in range(0, len(gone), GLUE_DELETE_BATCH):
                errors = glue.batch_delete_partition(
                    DatabaseName=self.glue_database, TableName=table,
                    PartitionsToDelete=[{"Values": [run_date, m]} for m in gone[i:i + GLUE_DELETE_BATCH]]
                ).get("Errors", [])
                self._raise_on(errors, where, "dropped", {"EntityNotFoundException"})
        except ClientError as exc:
            err = exc.response.get("Error", {})
            raise LakeError(f"Glue refused the partitions of {where} for {run_date}: {err.get('Code')} "
                            f"{err.get('Message', '')}; re-run the day to complete it") from None
        return previous

    @staticmethod
    def _raise_on(errors: list[dict], where: str, doing: str, done: frozenset | set = frozenset()) -> None:
        real = [e for e in errors if e.get("ErrorDetail", {}).get("ErrorCode") not in done]
        if real:
            detail = real[0]["ErrorDetail"]
            raise LakeError(f"Glue refused {len(real)} partition(s) of {where} ({doing}): "
                            f"{detail.get('ErrorCode')} {detail.get('ErrorMessage', '')}; re-run the day to "
                            "complete it")

    def _create_table(self, table: str, schema: pl.Schema) -> dict:
        glue = self.client("glue")
        spec = table_input(table, self._uri(f"{self._base()}{table}/"), schema)
        try:
            glue.create_table(DatabaseName=self.glue_database, TableInput=spec)
        except glue.exceptions.AlreadyExistsException:
            pass  # another run registered it first
        except ClientError as exc:
            raise LakeError(f"Glue table {self.glue_database}.{table} cannot be created "
                            f"({exc.response.get('Error', {}).get('Code')}): does the Glue database "
                            f"{self.glue_database!r} exist (MUSIC_FEEDBACK_GLUE_DATABASE)?") from None
        return spec["StorageDescriptor"]

    def _drop_old(self, table: str, run_date: str, keep: str, previous: Optional[str]) -> None:
        """After the switch: the previous generation, objects of the layout before generations, and crash
        leftovers (generations nothing points at, untouched for an hour). Best effort: what stays is never
        read, and the next replace of the day deletes it."""
        s3 = self.client("s3")
        day = self._day_key(table, run_date)
        cutoff = time.time() - LEFTOVER_AGE_S
        try:
            stale = []
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=day):
                for obj in page.get("Contents", []):
                    head = obj["Key"][len(day):].split("/", 1)[0]
                    if not head.startswith(f"{GENERATION}="):
                        stale.append(obj["Key"])  # the layout before generations
                        continue
                    gen = head.split("=", 1)[1]
                    if gen != keep and (gen == previous or obj["LastModified"].timestamp() < cutoff):
                        stale.append(obj["Key"])
            for i in range(0, len(stale), S3_DELETE_BATCH):
                s3.delete_objects(Bucket=self.bucket, Delete={
                    "Objects": [{"Key": k} for k in stale[i:i + S3_DELETE_BATCH]], "Quiet": True})
        except (ClientError, BotoCoreError):
            pass

    # -- reading ----------------------------------------------------------------------------------------
    def _resolve(self, table: str, run_date: str) -> dict[str, str]:
        """marketplace -> key of its file, as the catalogue names them now; raises _Moved mid-switch."""
        if not self.glue_database:
            s3 = self.client("s3")
            try:
                pointer = json.loads(s3.get_object(Bucket=self.bucket, Key=self._pointer_key(table, run_date))
                                     ["Body"].read())
            except s3.exceptions.NoSuchKey:
                return {}
            folder = self._generation_key(table, run_date, pointer["generation"])
            return {m: f"{folder}marketplace={m}/{PART}" for m in pointer["marketplaces"]}
        glue = self.client("glue")
        try:
            parts = self._day_partitions(table, run_date)
        except glue.exceptions.EntityNotFoundException:
            return {}  # no table yet: the day was never written
        generations = {p.get("Parameters", {}).get(GENERATION) for p in parts}
        if len(generations) > 1:
            raise _Moved()
        expected = (parts[0].get("Parameters", {}).get(GENERATION_PARTS) if parts else None)
        if expected is not None and int(expected) != len(parts):
            raise _Moved()
        return {p["Values"][1]: self._key_of(p["StorageDescriptor"]["Location"]).rstrip("/") + f"/{PART}"
                for p in parts}

    def read_day(self, table: str, run_date: str) -> pl.DataFrame:
        s3 = self.client("s3")
        delay = 0.02
        for _ in range(READ_ATTEMPTS):
            try:
                files = self._resolve(table, run_date)
                frames = []
                for market, key in sorted(files.items()):
                    try:
                        body = s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
                    except s3.exceptions.NoSuchKey:
                        raise _Moved() from None  # replaced and deleted since we resolved it
                    frames.append(pl.read_parquet(io.BytesIO(body)).with_columns(pl.lit(market).alias("marketplace")))
                return pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()
            except _Moved:
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
            except (ClientError, BotoCoreError) as exc:
                raise LakeError(f"{table} for {run_date} cannot be read from {self.describe()}: {exc}") from None
        raise LakeError(f"{table} for {run_date} kept changing in {self.describe()} while being read, or its "
                        "partitions are half-switched (a replace that failed part-way): re-run the day's export")

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" + (f" (Glue {self.glue_database})" if self.glue_database else "")
