"""Every setting of the AWS adapter set, read from the environment in one place.

Endpoints are boto3's own: `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_<SERVICE>` (e.g. `..._DYNAMODB`,
`..._SAGEMAKER_RUNTIME`), unset on AWS itself; credentials come from the standard chain (role, profile,
environment), never from a file in the project.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from dagster import EnvVar

REGION_VARS = ("AWS_REGION", "AWS_DEFAULT_REGION")


class AwsConfigError(ValueError):
    """A setting of the AWS adapter set is missing or malformed; the message names the variable."""


def _get(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or default


@dataclass(frozen=True)
class AwsSettings:
    region: str
    bucket: str  # the IO manager, the lake, the model registry and UNLOAD share it, under prefixes
    io_prefix: str = "assets"
    lake_prefix: str = "lake"
    registry_prefix: str = "model-registry"
    glue_database: str = "music_feedback"
    candidates_table: str = "music-feedback-candidates"
    score_cache_table: str = "music-feedback-score-cache"
    feedback_table: str = "music-feedback-feedback"
    event_bus: str = "music-feedback"
    metrics_namespace: str = "MusicFeedback"
    playlists_table: str = "music-feedback-playlists"
    link_keys_secret: str = "music-feedback/link-keys"  # Secrets Manager: JSON {"kid": "key", ...}
    alerts_topic_arn: str = ""  # SNS; unset, the preflight names MUSIC_FEEDBACK_ALERTS_TOPIC_ARN

    @classmethod
    def from_env(cls, env_vars: bool = False) -> "AwsSettings":
        """The settings read now; with `env_vars`, the two required ones (region, bucket) are `EnvVar`s
        that Dagster resolves at run launch instead, so the definitions load without them."""
        region = next((v for v in map(_get, REGION_VARS) if v), None)
        missing = [] if region else ["AWS_REGION (the region of every service)"]
        bucket = _get("MUSIC_FEEDBACK_S3_BUCKET")
        if not bucket:
            missing.append("MUSIC_FEEDBACK_S3_BUCKET (the bucket of the assets, the lake and the models)")
        if env_vars:
            region, bucket, missing = region_setting(), EnvVar("MUSIC_FEEDBACK_S3_BUCKET"), []
        if missing:
            raise AwsConfigError("MUSIC_FEEDBACK_ENV=aws needs " + " and ".join(missing))
        return cls(
            region=region, bucket=bucket,
            io_prefix=_get("MUSIC_FEEDBACK_S3_IO_PREFIX", cls.io_prefix),
            lake_prefix=_get("MUSIC_FEEDBACK_S3_LAKE_PREFIX", cls.lake_prefix),
            registry_prefix=_get("MUSIC_FEEDBACK_S3_REGISTRY_PREFIX", cls.registry_prefix),
            glue_database=_get("MUSIC_FEEDBACK_GLUE_DATABASE", cls.glue_database),
            candidates_table=_get("MUSIC_FEEDBACK_DYNAMODB_TABLE", cls.candidates_table),
            score_cache_table=_get("MUSIC_FEEDBACK_SCORE_CACHE_TABLE", cls.score_cache_table),
            feedback_table=_get("MUSIC_FEEDBACK_FEEDBACK_TABLE", cls.feedback_table),
            event_bus=_get("MUSIC_FEEDBACK_EVENT_BUS", cls.event_bus),
            metrics_namespace=_get("MUSIC_FEEDBACK_METRICS_NAMESPACE", cls.metrics_namespace),
            playlists_table=_get("MUSIC_FEEDBACK_PLAYLISTS_TABLE", cls.playlists_table),
            link_keys_secret=_get("MUSIC_FEEDBACK_LINK_KEYS_SECRET", cls.link_keys_secret),
            alerts_topic_arn=_get("MUSIC_FEEDBACK_ALERTS_TOPIC_ARN", cls.alerts_topic_arn))


def region_setting():
    """The region as a Dagster `EnvVar`: AWS_REGION, or AWS_DEFAULT_REGION when only that one is set."""
    return EnvVar(next((v for v in REGION_VARS if _get(v)), REGION_VARS[0]))


def endpoint_setting(service_id: str) -> str:
    """The variable that points a service at another endpoint, as boto3 names it."""
    return f"AWS_ENDPOINT_URL_{service_id.upper().replace(' ', '_').replace('-', '_')}"


def endpoint_of(service_id: str) -> str | None:
    return _get(endpoint_setting(service_id)) or _get("AWS_ENDPOINT_URL")
