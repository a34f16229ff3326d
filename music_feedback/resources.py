"""The adapter set, picked in one place by MUSIC_FEEDBACK_ENV (local by default)."""
from __future__ import annotations

import os

from music_feedback import settings
from music_feedback.io.parquet_io_manager import LocalParquetIOManager
from music_feedback.scoring.cache.parquet_cache import ParquetScoreCache
from music_feedback.scoring.deployment.embedded import InProcessDeployer
from music_feedback.scoring.registry.local import LocalModelRegistry
from music_feedback.scoring.select import scorer_resource
from music_feedback.store.sqlite_store import SQLiteCandidateStore
from music_feedback.warehouse.duckdb_warehouse import DuckDBWarehouse
from music_feedback.feedback.sqlite_store import SQLiteFeedbackStore
from music_feedback.lake.local import LocalLake
from music_feedback.playlists.store import SQLitePlaylistStore
from music_feedback.alerts.sink import LocalFileAlertSink
from music_feedback.metrics.sink import SQLiteMetricsSink
from music_feedback.feedback.events import EventBridgePublisher, OutboxLog
from music_feedback.delivery.settings import email_sender as configured


def candidate_store():
    """DynamoDB on AWS; else MUSIC_FEEDBACK_CANDIDATE_STORE=sqlite (default) or dynamodb."""
    if settings.get_env() == "aws" or settings.candidate_store_kind() == "dynamodb":
        # lazy: the DynamoDB store imports boto3 (~0.26 s); `why` and the service load this module locally
        from music_feedback.store.dynamodb import DynamoDBCandidateStore
        return DynamoDBCandidateStore.from_env()
    return SQLiteCandidateStore(path=str(settings.store_path()))


def warehouse():
    """Redshift on AWS, else the embedded DuckDB file (the service's contact policy reads it)."""
    if settings.get_env() == "aws":
        # lazy: redshift_warehouse imports psycopg2, boto3 (~0.9 s); `why` loads this module locally
        from music_feedback.warehouse.redshift_warehouse import RedshiftWarehouse
        return RedshiftWarehouse.from_env()
    return DuckDBWarehouse(path=str(settings.warehouse_path()), **settings.duckdb_stage_settings())


def local_resources() -> dict:
    return {
        "warehouse": warehouse(),
        "scorer": scorer_resource("local"),
        "score_cache": ParquetScoreCache(path=str(settings.score_cache_path())),
        "model_registry": LocalModelRegistry(root=str(settings.data_home() / "lake" / "model_registry")),
        "model_deployer": InProcessDeployer(),  # the in-process scorer reads the registry: nothing to deploy
        "candidate_store": candidate_store(),
        "io_manager": LocalParquetIOManager(base_dir=str(settings.io_root())),
        "feedback_store": feedback_store(),
        "email_sender": email_sender(),
        "event_publisher": event_publisher(),
        "lake": LocalLake(root=str(settings.data_home() / "lake")),
        "playlist_store": SQLitePlaylistStore(path=str(settings.data_home() / "playlists.sqlite")),
        "alert_sink": LocalFileAlertSink(path=str(settings.data_home() / "alerts.jsonl")),
        "metrics_sink": SQLiteMetricsSink(path=str(settings.data_home() / "metrics.sqlite")),
    }


def event_publisher():
    """EventBridge on AWS or when MUSIC_FEEDBACK_EVENT_BUS names a bus; else the outbox table itself."""
    bus = os.environ.get("MUSIC_FEEDBACK_EVENT_BUS") or ("music-feedback" if settings.get_env() == "aws" else "")
    if bus:
        return EventBridgePublisher(bus_name=bus, endpoint_url=os.environ.get("MUSIC_FEEDBACK_EVENTS_ENDPOINT"),
                                    region_name=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
                                    or "us-east-1")
    return OutboxLog()


def feedback_store():
    if settings.get_env() == "aws":
        # lazy: the DynamoDB feedback store imports boto3 (~0.26 s); `why` and the service load this module locally
        from music_feedback.feedback.dynamodb import DynamoDBFeedbackStore
        return DynamoDBFeedbackStore.from_env()
    return SQLiteFeedbackStore(path=str(settings.feedback_store_path()))


def email_sender():
    if settings.get_env() == "aws":
        # lazy: ses imports boto3 (~0.26 s); `why` and the service load this module locally
        from music_feedback.delivery.email.ses import SESv2Sender
        return SESv2Sender.from_env()
    return configured()


def get_resources(env_vars: bool = False) -> dict:
    """The one switch: MUSIC_FEEDBACK_ENV=aws picks every AWS adapter, anything else the embedded set.
    `env_vars` is for the set Dagster is given (defs/resources.py): the AWS set's required settings are then
    `EnvVar`s resolved at run launch; the CLI and the service take the values read now."""
    if settings.get_env() == "aws":
        # lazy: the AWS set imports boto3, psycopg2, every AWS adapter (~0.9 s); `why` loads this locally
        from music_feedback.aws.resources import aws_resources
        return aws_resources(env_vars=env_vars)
    return local_resources()
