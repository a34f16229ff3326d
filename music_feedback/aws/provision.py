"""Create what the AWS adapter set needs and does not create itself: the bucket, the Glue database, the
DynamoDB tables with their indexes and TTL, and the event bus. For a fresh account or the local stand-ins;
a production account gets the same from deploy/infrastructure/."""
from __future__ import annotations

import boto3

from music_feedback.aws.settings import AwsSettings


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
    events = session.client("events", region_name=s.region)
    if s.event_bus not in {b["Name"] for b in events.list_event_buses().get("EventBuses", [])}:
        events.create_event_bus(Name=s.event_bus)
        created.append(f"EventBridge bus {s.event_bus}")
    return created
