"""The adapter set, picked in one place by MUSIC_FEEDBACK_ENV (local by default)."""
from __future__ import annotations

from music_feedback import settings
from music_feedback.io.parquet_io_manager import LocalParquetIOManager
from music_feedback.scoring.cache.sqlite_cache import SQLiteScoreCache
from music_feedback.scoring.registry.local import LocalModelRegistry
from music_feedback.scoring.select import scorer_resource
from music_feedback.store.sqlite_store import SQLiteCandidateStore
from music_feedback.warehouse.duckdb_warehouse import DuckDBWarehouse
from music_feedback.feedback.sqlite_store import SQLiteFeedbackStore
from music_feedback.lake.local import LocalLake
from music_feedback.playlists.store import SQLitePlaylistStore
from music_feedback.metrics.sink import SQLiteMetricsSink


def candidate_store():
    """The configured candidate store: MUSIC_FEEDBACK_CANDIDATE_STORE=sqlite (default) or dynamodb."""
    kind = settings.candidate_store_kind()
    if kind == "dynamodb":
        from music_feedback.store.dynamodb import DynamoDBCandidateStore
        return DynamoDBCandidateStore.from_env()
    return SQLiteCandidateStore(path=str(settings.store_path()))


def local_resources() -> dict:
    return {
        "warehouse": DuckDBWarehouse(path=str(settings.warehouse_path())),
        "scorer": scorer_resource("local"),
        "score_cache": SQLiteScoreCache(path=str(settings.data_home() / "score_cache.sqlite")),
        "model_registry": LocalModelRegistry(root=str(settings.data_home() / "lake" / "model_registry")),
        "candidate_store": candidate_store(),
        "io_manager": LocalParquetIOManager(base_dir=str(settings.io_root())),
        "feedback_store": feedback_store(),
        "email_sender": email_sender(),
        "event_publisher": event_publisher(),
        "lake": LocalLake(root=str(settings.data_home() / "lake")),
        "playlist_store": SQLitePlaylistStore(path=str(settings.data_home() / "playlists.sqlite")),
        "metrics_sink": SQLiteMetricsSink(path=str(settings.data_home() / "metrics.sqlite")),
    }


def event_publisher():
    """The outbox table itself by default; EventBridge when MUSIC_FEEDBACK_EVENT_BUS names a bus."""
    import os
    bus = os.environ.get("MUSIC_FEEDBACK_EVENT_BUS")
    if bus:
        from music_feedback.feedback.events import EventBridgePublisher
        return EventBridgePublisher(bus_name=bus, endpoint_url=os.environ.get("MUSIC_FEEDBACK_EVENTS_ENDPOINT"),
                                    region_name=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
                                    or "us-east-1")
    from music_feedback.feedback.events import OutboxLog
    return OutboxLog()


def feedback_store():
    return SQLiteFeedbackStore(path=str(settings.feedback_store_path()))


def email_sender():
    from music_feedback.delivery.settings import email_sender as configured
    return configured()


def get_resources() -> dict:
    env = settings.get_env()
    if env == "aws":
        raise NotImplementedError(
            "MUSIC_FEEDBACK_ENV=aws: the AWS adapters (Redshift, SageMaker, DynamoDB, S3) are not part of this "
            "release yet; unset MUSIC_FEEDBACK_ENV to run on the embedded adapters")
    return local_resources()
