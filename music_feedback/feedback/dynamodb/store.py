"""The feedback store's DynamoDB adapter (boto3's low-level client); every adapter passes
music_feedback_tests/test_feedback_store.py. GSIs are eventually consistent on AWS: a contact or an answer
made a few milliseconds ago may be missing from a program-wide read (the cap and the batch read them
hours later), while every per-request read and every state change is strongly consistent."""
from __future__ import annotations

import os
from typing import Optional

from pydantic import Field

from music_feedback.aws.settings import region_setting
from music_feedback.feedback.dynamodb import table
from music_feedback.feedback.dynamodb.answers import Answers
from music_feedback.feedback.dynamodb.client import client_for
from music_feedback.feedback.dynamodb.ledger import Ledger
from music_feedback.feedback.port import FeedbackStore


class FeedbackTableError(RuntimeError):
    """The feedback table or one of its indexes is missing; the message names it and the fix."""


class DynamoDBFeedbackStore(Ledger, Answers, FeedbackStore):
    table_name: str = Field(default="music-feedback-feedback", description=(
        'DynamoDB table of the ledger, answers and suppressions (MUSIC_FEEDBACK_FEEDBACK_TABLE).'))
    endpoint_url: Optional[str] = Field(default=None, description=(
        "DynamoDB endpoint; None: boto3's own (MUSIC_FEEDBACK_DYNAMODB_ENDPOINT, else "
        'AWS_ENDPOINT_URL_DYNAMODB).'))
    region: str = Field(default="us-east-1", description=(
        'DynamoDB region (AWS_REGION, else AWS_DEFAULT_REGION).'))
    writers: int = Field(default=8, description='Parallel conditional writes (claims, settles, plans).')
    event_retention_days: float = Field(default=90.0, description=(
        "Days an event is kept: its `ttl` is created_at plus this, and DynamoDB's TTL deletes it (up to two "
        "days late) (MUSIC_FEEDBACK_FEEDBACK_EVENT_RETENTION_DAYS)."))

    @classmethod
    def from_env(cls, env_vars: bool = False) -> "DynamoDBFeedbackStore":
        """With `env_vars` (the Dagster set), the region is an `EnvVar` resolved at run launch."""
        env = os.environ.get
        region = env("AWS_REGION", env("AWS_DEFAULT_REGION", "us-east-1"))
        if env_vars:
            region = region_setting()
        return cls(table_name=env("MUSIC_FEEDBACK_FEEDBACK_TABLE", "music-feedback-feedback"),
                   endpoint_url=env("MUSIC_FEEDBACK_DYNAMODB_ENDPOINT") or None, region=region,
                   event_retention_days=float(env("MUSIC_FEEDBACK_FEEDBACK_EVENT_RETENTION_DAYS", "90")))

    def client(self):
        return client_for(self.endpoint_url, self.region, self.writers)

    def create_tables(self, ttl: bool = True) -> list[str]:
        """The table (if missing) with its indexes, and TTL enabled on `ttl` (events expire)."""
        return [self.table_name] if table.create_table(self.client(), self.table_name, ttl) else []

    def check(self) -> None:
        problem = table.missing(self.client(), self.table_name)
        if problem:
            raise FeedbackTableError(problem)

    def describe(self) -> str:
        return f"DynamoDB table {self.table_name}"
