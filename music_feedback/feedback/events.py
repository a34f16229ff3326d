"""Feedback events leave through the outbox: the answer and its event are written in one transaction,
and a relay publishes what is unpublished. On the embedded default the outbox table is the event log
itself; on AWS the relay puts the events on an EventBridge bus (at least once: a consumer dedupes on
the event id, which is the outbox row id)."""
from __future__ import annotations

import abc
import json
import random
import time
from typing import Optional

from dagster import ConfigurableResource
from pydantic import Field, PrivateAttr

from music_feedback.feedback.port import FeedbackStore

SOURCE = "music-feedback"


class EventPublisher(ConfigurableResource):
    @abc.abstractmethod
    def publish(self, events: list[dict]) -> set[int]:
        """Publish outbox rows; returns the ids that were accepted."""

    def describe(self) -> str:
        return type(self).__name__


class OutboxLog(EventPublisher):
    """Embedded default: readers consume the outbox table; publishing only marks rows as handed over."""

    def publish(self, events: list[dict]) -> set[int]:
        return {e["id"] for e in events}

    def describe(self) -> str:
        return "the outbox table (embedded event log)"


class EventBridgePublisher(EventPublisher):
    bus_name: str = Field(default="default", description=(
        'EventBridge bus the feedback events go to (MUSIC_FEEDBACK_EVENT_BUS).'))
    region_name: str = Field(default="us-east-1", description=(
        'EventBridge region (AWS_REGION, else AWS_DEFAULT_REGION).'))
    endpoint_url: Optional[str] = Field(default=None, description=(
        "EventBridge endpoint; None: boto3's own (MUSIC_FEEDBACK_EVENTS_ENDPOINT)."))
    max_attempts: int = Field(default=5, description=(
        'Attempts in all per PutEvents call, the first included.'))
    _client = PrivateAttr(default=None)

    def client(self):
        if self._client is None:
            # lazy: boto3 ~0.26 s; every local command (`why`) imports this module for OutboxLog
            import boto3
            self._client = boto3.client("events", region_name=self.region_name, endpoint_url=self.endpoint_url)
        return self._client

    def publish(self, events: list[dict]) -> set[int]:
        accepted: set[int] = set()
        for i in range(0, len(events), 10):  # PutEvents takes at most 10 entries
            accepted |= self._put(events[i:i + 10])
        return accepted

    def _put(self, batch: list[dict]) -> set[int]:
        pending, accepted = list(batch), set()
        for attempt in range(self.max_attempts):
            entries = [{"Source": SOURCE, "DetailType": e["kind"], "EventBusName": self.bus_name,
                        "Detail": json.dumps({**e["detail"], "eventId": e["id"], "programId": e["program_id"]}),
                        "Time": e["created_at"]} for e in pending]
            result = self.client().put_events(Entries=entries)
            failed = []
            for event, status in zip(pending, result["Entries"]):
                (failed.append(event) if status.get("ErrorCode") else accepted.add(event["id"]))
            if not failed:
                break
            pending = failed  # only the failed entries go again, after a jittered backoff
            time.sleep(random.uniform(0, 0.1 * 2 ** attempt))
        return accepted

    def describe(self) -> str:
        return f"EventBridge bus {self.bus_name}"


def relay(store: FeedbackStore, publisher: EventPublisher, batch: int = 500, now=time.time) -> int:
    """Publish every unpublished event, oldest first; returns how many were published."""
    total = 0
    while True:
        events = store.unpublished_events(batch)
        if not events:
            return total
        done = publisher.publish(events)
        store.mark_published(sorted(done), now())
        total += len(done)
        if len(done) < len(events):
            return total  # the rest stays in the outbox for the next relay
