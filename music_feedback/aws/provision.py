"""Create what the AWS adapter set needs and does not create itself: the bucket, the Glue database, the
DynamoDB tables with their indexes and TTL, the event bus, the link-keys secret (one random key) and the
alert topic. For a fresh account or the local stand-ins;
a production account gets the same from deploy/infrastructure/."""
from __future__ import annotations

import json
import secrets

import boto3

from music_feedback.aws.settings import AwsSettings

ALERTS_TOPIC = "music-feedback-alerts"


def provision(s: AwsSettings, resources: dict) -> list[str]:
    """Idempotent; returns what it created."""
    session = boto3.session.Session()  # read the endpoints and credentials as they are now
    created = []
    s3 = session.client("s3", region_name=s.region)
    if s.bucket not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
        kw = {} if s.region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": s.region}}
        s3.create_bucket(Bucket=s.bucket, **kw)
        created.append(f"S3 bucket {s.bucket}")
    glue = session.client("glue", region_name=s.region)
    try:
        glue.create_database(DatabaseInput={"Name": s.glue_database})
        created.append(f"Glue database {s.glue_database}")
    except glue.exceptions.AlreadyExistsException:
        pass
    if resources["candidate_store"].create_table():
        created.append(f"DynamoDB table {s.candidates_table}")
    resources["score_cache"].ensure_table()
    for table in resources["feedback_store"].create_tables():
        created.append(f"DynamoDB table {table}")
    if resources["playlist_store"].create_table():
        created.append(f"DynamoDB table {s.playlists_table}")
    created += _link_keys_secret(session, s) + _alerts_topic(session, s)
    events = session.client("events", region_name=s.region)
    if s.event_bus not in {b["Name"] for b in events.list_event_buses().get("EventBuses", [])}:
        events.create_event_bus(Name=s.event_bus)
        created.append(f"EventBridge bus {s.event_bus}")
    return created


def _link_keys_secret(session, s: AwsSettings) -> list[str]:
    """The link-signing keys every task shares: one random key, made once."""
    client = session.client("secretsmanager", region_name=s.region)
    try:
        client.describe_secret(SecretId=s.link_keys_secret)
        return []
    except client.exceptions.ResourceNotFoundException:
        client.create_secret(Name=s.link_keys_secret, SecretString=json.dumps({"k1": secrets.token_urlsafe(32)}))
        return [f"Secrets Manager secret {s.link_keys_secret}"]


def _alerts_topic(session, s: AwsSettings) -> list[str]:
    """The topic MUSIC_FEEDBACK_ALERTS_TOPIC_ARN names (the ARN's last part is its name); unset, the topic
    music-feedback-alerts, whose ARN the setting then needs."""
    sns = session.client("sns", region_name=s.region)
    if not s.alerts_topic_arn:
        arn = sns.create_topic(Name=ALERTS_TOPIC)["TopicArn"]
        return [f"SNS topic {arn} (set MUSIC_FEEDBACK_ALERTS_TOPIC_ARN to it)"]
    try:
        sns.get_topic_attributes(TopicArn=s.alerts_topic_arn)
        return []
    except sns.exceptions.NotFoundException:
        sns.create_topic(Name=s.alerts_topic_arn.rsplit(":", 1)[-1])
        return [f"SNS topic {s.alerts_topic_arn}"]
