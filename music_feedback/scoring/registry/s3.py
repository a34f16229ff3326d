"""AWS adapter of the model registry: objects under an S3 prefix."""
from __future__ import annotations

from typing import Optional

import boto3
from botocore.exceptions import ClientError
from pydantic import Field, PrivateAttr

from music_feedback.scoring.registry.port import ModelRegistry


class S3ModelRegistry(ModelRegistry):
    bucket: str = Field(description='S3 bucket of the model registry (MUSIC_FEEDBACK_S3_BUCKET).')
    prefix: str = Field(default="model-registry", description=(
        'Key prefix of the registry in the bucket (MUSIC_FEEDBACK_S3_REGISTRY_PREFIX).'))
    region_name: str = Field(default="us-east-1", description=(
        'S3 region (AWS_REGION, else AWS_DEFAULT_REGION).'))
    endpoint_url: Optional[str] = Field(default=None, description=(
        "S3 endpoint; None: boto3's own (AWS_ENDPOINT_URL_S3, else the region's)."))
    _client = PrivateAttr(default=None)

    def client(self):
        if self._client is None:
            self._client = boto3.client("s3", region_name=self.region_name, endpoint_url=self.endpoint_url)
        return self._client

    def _key(self, key: str) -> str:
        return f"{self.prefix.strip('/')}/{key}" if self.prefix else key

    def put_bytes(self, key: str, data: bytes) -> None:
        self.client().put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def get_bytes(self, key: str) -> bytes | None:
        try:
            return self.client().get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def url(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"
