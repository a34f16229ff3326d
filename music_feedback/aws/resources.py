"""The AWS adapter set, behind the same resource keys as the embedded one (see music_feedback.resources,
whose `get_resources` picks this set when MUSIC_FEEDBACK_ENV=aws; this module imports nothing from it)."""
from __future__ import annotations

from dagster import EnvVar

from music_feedback.aws.settings import AwsSettings
from music_feedback.delivery.email.ses import SESv2Sender
from music_feedback.feedback.dynamodb import DynamoDBFeedbackStore
from music_feedback.feedback.events import EventBridgePublisher
from music_feedback.io.s3_io_manager import S3ParquetIOManager
from music_feedback.lake.s3 import S3Lake
from music_feedback.metrics.sink import CloudWatchSink
from music_feedback.alerts.sns import TOPIC_VAR, SNSAlertSink
from music_feedback.playlists.dynamodb import DynamoDBPlaylistStore
from music_feedback.scoring.cache.dynamodb_cache import DynamoDBScoreCache
from music_feedback.scoring.deployment.select import deployer_resource
from music_feedback.scoring.registry.s3 import S3ModelRegistry
from music_feedback.scoring.select import scorer_resource
from music_feedback.store.dynamodb import DynamoDBCandidateStore
from music_feedback.warehouse.redshift_warehouse import RedshiftWarehouse


def aws_resources(s: AwsSettings | None = None, env_vars: bool = False) -> dict:
    """The AWS set. With `env_vars` (the set Dagster is given) the settings that must be set (the region,
    the bucket, Redshift's host, user and password) are `EnvVar`s, resolved at run launch and shown by name
    on the UI's resource page; settings with a default stay values read here (each field's description
    names the variable that overrides it)."""

    s = s or AwsSettings.from_env(env_vars=env_vars)
    return {
        "warehouse": RedshiftWarehouse.from_env(env_vars=env_vars),
        "scorer": scorer_resource("aws"),
        "score_cache": DynamoDBScoreCache(table_name=s.score_cache_table, region_name=s.region),
        "model_registry": S3ModelRegistry(bucket=s.bucket, prefix=s.registry_prefix, region_name=s.region),
        "model_deployer": deployer_resource("aws"),  # a promotion deploys to the SageMaker endpoint first
        "candidate_store": DynamoDBCandidateStore.from_env(env_vars=env_vars),
        "io_manager": S3ParquetIOManager.from_env(env_vars=env_vars),
        "feedback_store": DynamoDBFeedbackStore.from_env(env_vars=env_vars),
        "email_sender": SESv2Sender.from_env(env_vars=env_vars),
        "event_publisher": EventBridgePublisher(bus_name=s.event_bus, region_name=s.region),
        "lake": S3Lake(bucket=s.bucket, prefix=s.lake_prefix, region_name=s.region, glue_database=s.glue_database),
        # Every task reads and moves the same playlists, so they live in DynamoDB, not on a task's disk.
        "playlist_store": DynamoDBPlaylistStore(table_name=s.playlists_table, region_name=s.region),
        "alert_sink": SNSAlertSink(topic_arn=EnvVar(TOPIC_VAR) if env_vars else s.alerts_topic_arn,
                                   region_name=s.region),
        "metrics_sink": CloudWatchSink(namespace=s.metrics_namespace, region_name=s.region),
    }
