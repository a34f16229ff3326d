"""The alert sink's contract: every adapter delivers each alert whole (the local file on the embedded set; SNS
on AWS, on moto's server, read back through an SQS queue subscribed to the topic); and the alert itself names
the failing step and the error its code raised, not Dagster's "Steps failed" summary."""
from __future__ import annotations

import json
import time
import uuid

import boto3
import pytest
from dagster import DagsterEventType, build_run_status_sensor_context, instance_for_test, job, op

from music_feedback.alerts.failure import failure_alert, subject
from music_feedback.alerts.sink import LocalFileAlertSink
from music_feedback.defs.operations.sensors import alert_on_run_failure

pytestmark = pytest.mark.unit


def _sns_reader(moto_endpoint):
    """A topic with an SQS queue subscribed: returns (topic ARN, read) where read() gives what was published,
    each alert with the SNS subject and attributes it came with."""
    tag = uuid.uuid4().hex[:10]
    sns = boto3.client("sns", region_name="us-east-1", endpoint_url=moto_endpoint)
    sqs = boto3.client("sqs", region_name="us-east-1", endpoint_url=moto_endpoint)
    topic = sns.create_topic(Name=f"alerts-{tag}")["TopicArn"]
    queue = sqs.create_queue(QueueName=f"alerts-{tag}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)

    def read() -> list[dict]:
        out, deadline = [], time.monotonic() + 5
        while time.monotonic() < deadline:
            messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
                "Messages", [])
            if not messages and out:
                break
            for m in messages:
                envelope = json.loads(m["Body"])
                alert = json.loads(envelope["Message"])
                alert["_subject"] = envelope.get("Subject")
                alert["_attributes"] = {k: v["Value"] for k, v in envelope.get("MessageAttributes", {}).items()}
                out.append(alert)
                sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
        return out
    return topic, read


@pytest.fixture(params=["file", pytest.param("sns-moto", marks=pytest.mark.integration)])
def sink(request, tmp_path):
    """(sink, read): read() returns the alerts delivered so far."""
    if request.param == "file":
        s = LocalFileAlertSink(path=str(tmp_path / "alerts.jsonl"))
        return s, s.read
    from music_feedback.alerts.sns import SNSAlertSink
    moto_endpoint = request.getfixturevalue("moto_endpoint")
    topic, read = _sns_reader(moto_endpoint)
    return SNSAlertSink(topic_arn=topic, endpoint_url=moto_endpoint), read


def _alert(run_id="r1", step="music_feedback__stored_candidates", error="ValueError: the warehouse is gone",
           **kw) -> dict:
    return {"at": 1_800_000_000.5, "job": "music_feedback_daily_batch", "run_id": run_id, "partition": "2026-11-23",
            "step": step, "error_type": "ValueError", "error": error,
            "errors": [{"step": step, "error_type": "ValueError", "error": error}],
            "run_message": "Execution of run failed. Steps failed: ['x'].", **kw}


def _strip(alert: dict) -> dict:
    return {k: v for k, v in alert.items() if not k.startswith("_")}


def test_an_alert_is_delivered_whole(sink):
    s, read = sink
    assert s.publish(_alert()) and s.describe()
    (got,) = read()
    assert _strip(got) == _alert()


def test_every_alert_is_delivered_once(sink):
    s, read = sink
    for i in range(5):
        s.publish(_alert(run_id=f"r{i}", error=f"KeyError: 'day {i}' — ünïcode\nsecond line"))
    got = sorted(read(), key=lambda a: a["run_id"])
    assert [_strip(a) for a in got] == [_alert(run_id=f"r{i}", error=f"KeyError: 'day {i}' — ünïcode\nsecond line")
                                        for i in range(5)]


def test_an_alert_of_a_run_that_failed_before_any_step_is_delivered(sink):
    s, read = sink
    s.publish(_alert(step=None, error_type=None, errors=[], partition=None))
    assert _strip(read()[0])["step"] is None


@pytest.mark.integration
def test_sns_carries_the_job_and_step_in_its_subject_and_attributes(moto_endpoint):
    from music_feedback.alerts.sns import SNSAlertSink
    topic, read = _sns_reader(moto_endpoint)
    SNSAlertSink(topic_arn=topic, endpoint_url=moto_endpoint).publish(_alert())
    (got,) = read()
    assert got["_subject"] == ("music_feedback: music_feedback_daily_batch [2026-11-23] failed at "
                               "music_feedback__stored_candidates")
    assert got["_attributes"] == {"job": "music_feedback_daily_batch", "step": "music_feedback__stored_candidates",
                                  "partition": "2026-11-23"}


@pytest.mark.integration
def test_sns_without_a_topic_names_the_setting(moto_endpoint):
    from music_feedback.alerts.sns import AlertConfigError, SNSAlertSink
    with pytest.raises(AlertConfigError, match="MUSIC_FEEDBACK_ALERTS_TOPIC_ARN"):
        SNSAlertSink(topic_arn="", endpoint_url=moto_endpoint).publish(_alert())


def test_a_subject_is_short_printable_ascii():
    text = subject(_alert(step="s" * 200, job="jöb"))
    assert len(text) <= 100 and text.isascii() and text.isprintable()


def _failed_run(instance):
    @op
    def extract():
        return 1

    @op
    def store(rows):
        try:
            {}["table"]
        except KeyError as exc:
            raise ValueError(f"the warehouse is gone ({rows} rows read)") from exc

    @job
    def failing():
        store(extract())

    result = failing.execute_in_process(instance=instance, raise_on_error=False, tags={"dagster/partition": "2026-11-23"})
    failure = next(e for e in result.all_events if e.event_type == DagsterEventType.RUN_FAILURE)
    return result, failure


def test_the_alert_names_the_failing_step_and_its_own_error():
    with instance_for_test() as instance:
        result, failure = _failed_run(instance)
        alert = failure_alert(instance, result.dagster_run, failure.message, 5.0)
    assert "Steps failed" in failure.message  # what Dagster's run failure says: not the cause
    assert alert["step"] == "store" and alert["error_type"] == "ValueError"
    assert alert["error"] == "ValueError: the warehouse is gone (1 rows read)"
    assert alert["errors"] == [{"step": "store", "error_type": "ValueError", "error": alert["error"]}]
    assert (alert["job"], alert["run_id"], alert["partition"], alert["at"]) == (
        "failing", result.run_id, "2026-11-23", 5.0)


def test_the_sensor_sends_the_alert_to_the_sink(tmp_path):
    alerts = LocalFileAlertSink(path=str(tmp_path / "alerts.jsonl"))
    with instance_for_test() as instance:
        result, failure = _failed_run(instance)
        context = build_run_status_sensor_context(
            sensor_name="alert_on_run_failure", dagster_instance=instance, dagster_run=result.dagster_run,
            dagster_event=failure, resources={"alert_sink": alerts}).for_run_failure()
        alert_on_run_failure(context)
    (alert,) = alerts.read()
    assert alert["run_id"] == result.run_id and alert["step"] == "store"
    assert alert["error"].startswith("ValueError: the warehouse is gone")
