"""The event relay: the outbox on the embedded default, EventBridge on moto's server (a rule routes the
bus's events to an SQS queue, where the test reads them)."""
from __future__ import annotations

import json

import boto3
import pytest

from music_feedback.feedback.events import SOURCE, EventBridgePublisher, OutboxLog, relay
from music_feedback.feedback.sqlite_store import SQLiteFeedbackStore

pytestmark = pytest.mark.unit


def _store(tmp_path, n: int) -> SQLiteFeedbackStore:
    store = SQLiteFeedbackStore(path=str(tmp_path / "feedback.sqlite"))
    for i in range(n):
        store.record_event("music-feedback", "feedback.submitted", {"listener_id": i, "track_id": 7}, 1_000.0 + i)
    return store


def test_outbox_relay_marks_everything_once(tmp_path):
    store = _store(tmp_path, 23)
    assert relay(store, OutboxLog(), batch=10) == 23
    assert relay(store, OutboxLog()) == 0 and store.unpublished_events() == []


@pytest.mark.integration
def test_eventbridge_relay_delivers_each_event(tmp_path, moto_endpoint):
    kw = {"region_name": "us-east-1", "endpoint_url": moto_endpoint}
    events, sqs = boto3.client("events", **kw), boto3.client("sqs", **kw)
    events.create_event_bus(Name="feedback")
    queue = sqs.create_queue(QueueName="feedback-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="all-feedback", EventBusName="feedback", EventPattern=json.dumps({"source": [SOURCE]}))
    events.put_targets(Rule="all-feedback", EventBusName="feedback", Targets=[{"Id": "q", "Arn": arn}])
    store = _store(tmp_path, 25)
    assert relay(store, EventBridgePublisher(bus_name="feedback", endpoint_url=moto_endpoint)) == 25
    got = []
    while True:
        msgs = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
        if not msgs:
            break
        got += [json.loads(m["Body"]) for m in msgs]
        sqs.delete_message_batch(QueueUrl=queue, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                                                          for i, m in enumerate(msgs)])
    assert sorted(e["detail"]["listener_id"] for e in got) == list(range(25))
    assert {e["detail-type"] for e in got} == {"feedback.submitted"} and {e["source"] for e in got} == {SOURCE}
    assert store.unpublished_events() == []
