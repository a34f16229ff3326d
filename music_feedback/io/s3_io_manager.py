"""The IO manager on S3: the same keys as the local folder, under a prefix. One PUT replaces an object
whole, so no temporary objects are needed. Eager reads fetch the object into memory; a LazyFrame input
is a polars scan of the object itself, with the credentials boto3 resolved (the standard chain), so an
asset reads only the columns and row groups it needs, as it does from the local folder."""
from __future__ import annotations

import io
import os
from typing import Iterable, Optional

import boto3
import polars as pl
from botocore.exceptions import BotoCoreError, ClientError
from dagster import EnvVar
from pydantic import Field, PrivateAttr

from music_feedback.aws.settings import region_setting
from music_feedback.io.port import ParquetIOManager


class S3IOError(RuntimeError):
    """S3 refused a read or a write; the message names the bucket and key."""


class S3ParquetIOManager(ParquetIOManager):
    bucket: str = Field(description='S3 bucket the assets are stored in (MUSIC_FEEDBACK_S3_BUCKET).')
    prefix: str = Field(default="assets", description=(
        'Key prefix of the assets in the bucket (MUSIC_FEEDBACK_S3_IO_PREFIX).'))
    region_name: str = Field(default="us-east-1", description=(
        'S3 region (AWS_REGION, else AWS_DEFAULT_REGION).'))
    endpoint_url: Optional[str] = Field(default=None, description=(
        "S3 endpoint; None: boto3's own (MUSIC_FEEDBACK_S3_ENDPOINT, else AWS_ENDPOINT_URL_S3)."))
    _client = PrivateAttr(default=None)
    _session = PrivateAttr(default=None)

    @classmethod
    def from_env(cls, env_vars: bool = False) -> "S3ParquetIOManager":
        """With `env_vars` (the Dagster set), the bucket and the region are `EnvVar`s resolved at run launch."""
        env = os.environ.get
        bucket = env("MUSIC_FEEDBACK_S3_BUCKET")
        region = env("AWS_REGION", env("AWS_DEFAULT_REGION", "us-east-1"))
        if env_vars:
            bucket, region = EnvVar("MUSIC_FEEDBACK_S3_BUCKET"), region_setting()
        if not bucket:
            raise ValueError("the S3 IO manager needs MUSIC_FEEDBACK_S3_BUCKET")
        return cls(bucket=bucket, prefix=env("MUSIC_FEEDBACK_S3_IO_PREFIX", "assets"),
                   region_name=region,
                   endpoint_url=env("MUSIC_FEEDBACK_S3_ENDPOINT") or None)

    def client(self):
        if self._client is None:
            self._session = boto3.session.Session()
            self._client = self._session.client("s3", region_name=self.region_name, endpoint_url=self.endpoint_url)
        return self._client

    def _full(self, key: str) -> str:
        base = self.prefix.strip("/")
        return f"{base}/{key}" if base else key

    def _call(self, what: str, key: str, fn):
        try:
            return fn()
        except ClientError as exc:
            err = exc.response.get("Error", {})
            raise S3IOError(f"S3 refused to {what} s3://{self.bucket}/{self._full(key)}: {err.get('Code')} "
                            f"{err.get('Message', '')} (bucket: MUSIC_FEEDBACK_S3_BUCKET)") from None
        except BotoCoreError as exc:
            raise S3IOError(f"S3 cannot be reached to {what} s3://{self.bucket}/{self._full(key)}: {exc}") from None

    def _store(self, key: str, write) -> None:
        buf = io.BytesIO()
        write(buf)
        self._call("write", key, lambda: self.client().put_object(
            Bucket=self.bucket, Key=self._full(key), Body=buf.getvalue()))

    def _exists(self, key: str) -> bool:
        try:
            self.client().head_object(Bucket=self.bucket, Key=self._full(key))
            return True
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in ("404", "NoSuchKey", "NotFound"):
                return False
            raise S3IOError(f"S3 refused to read s3://{self.bucket}/{self._full(key)}: {code} "
                            "(bucket: MUSIC_FEEDBACK_S3_BUCKET)") from None

    def _open(self, key: str) -> io.BytesIO:
        body = self._call("read", key, lambda: self.client().get_object(Bucket=self.bucket, Key=self._full(key)))
        return io.BytesIO(body["Body"].read())

    def storage_options(self) -> dict:
        """polars' (object_store's) options: boto3's region, credentials and, when not AWS's own, endpoint."""
        client = self.client()
        creds = self._session.get_credentials()
        if creds is None:
            raise S3IOError(f"no AWS credentials to read s3://{self.bucket}: configure the standard chain "
                            "(the task role, AWS_PROFILE or AWS_ACCESS_KEY_ID)")
        frozen = creds.get_frozen_credentials()
        opts = {"aws_region": client.meta.region_name, "aws_access_key_id": frozen.access_key,
                "aws_secret_access_key": frozen.secret_key}
        if frozen.token:
            opts["aws_session_token"] = frozen.token
        if self.endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL"):
            opts["aws_endpoint_url"] = client.meta.endpoint_url
            opts["aws_allow_http"] = str(client.meta.endpoint_url.startswith("http://")).lower()
        return opts

    def _scan(self, key: str) -> pl.LazyFrame:
        return pl.scan_parquet(self.where(key), storage_options=self.storage_options())

    def _delete(self, key: str) -> None:
        self._call("delete", key, lambda: self.client().delete_object(Bucket=self.bucket, Key=self._full(key)))

    def _list(self, prefix: str) -> Iterable[str]:
        full = self._full(prefix)
        pages = self._call("list", prefix, lambda: list(self.client().get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=full, Delimiter="/")))
        strip = len(self._full(""))
        return [o["Key"][strip:] for page in pages for o in page.get("Contents", [])]

    def where(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._full(key)}"
