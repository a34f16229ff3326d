"""The SES v2 adapter through the real boto3 client, over real HTTP, against the SES v2 stand-in."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from email.header import decode_header, make_header

import boto3
import pytest
from botocore.config import Config

from music_feedback.delivery.email.port import EmailMessage
from music_feedback.delivery.email.ses import ID_HEADER, SESConfigError, SESv2Sender
from music_feedback_tools.standins import ses as ses_standin

pytestmark = pytest.mark.integration

SENDER = "Music Feedback <feedback@music.test>"


def address(i: int) -> str:
    return f"listener-{i}@listeners.test"


def message(i: int) -> EmailMessage:
    return EmailMessage(message_id=f"<m{i}@music.test>", sender=SENDER, to=address(i),
                        subject=f"What did you think of Rock & <Roll> {i}? {{{{not a placeholder}}}}",
                        html=f"<p>Hi <b>there</b> &amp; {i}</p>", text=f"Hi there & <you> {i}", campaign="US-r&b",
                        headers={"List-Unsubscribe": f"<https://f.test/u/{i}>",
                                 "List-Unsubscribe-Post": "List-Unsubscribe=One-Click", "X-Campaign": "Café"})


def sender(url: str, **kw) -> SESv2Sender:
    kw = {"max_send_rate": 10_000.0, "base_delay_s": 0.01, **kw}
    return SESv2Sender(region="us-east-1", endpoint_url=url, configuration_set="feedback-events", **kw)


def send_all(s: SESv2Sender, messages: list[EmailMessage], threads: int = 1):
    chunks = [messages[i:i + s.batch_size] for i in range(0, len(messages), s.batch_size)]
    with ThreadPoolExecutor(threads) as pool:
        return [r for part in pool.map(s.send, chunks) for r in part]


def test_calls_of_50_carry_the_rendered_parts_and_headers_intact(fake_aws_env):
    with ses_standin.running() as (url, state):
        results = sender(url).send([message(i) for i in range(120)])
        assert [r.status for r in results] == ["sent"] * 120
        assert [r.message_id for r in results] == [f"<m{i}@music.test>" for i in range(120)]
        assert [c["entries"] for c in state.calls] == [50, 50, 20]
        assert {c["configuration_set"] for c in state.calls} == {"feedback-events"}
        assert len(state.accepted) == 120
        first = next(a for a in state.accepted if a["to"] == address(7))
        original = message(7)
        assert first["subject"] == original.subject  # no HTML escaping, no second template pass
        assert first["html"] == "<p>Hi <b>there</b> &amp; 7</p>" and first["text"] == original.text
        assert first["from"] == SENDER and first["configuration_set"] == "feedback-events"
        headers = first["headers"]
        assert headers["List-Unsubscribe"] == "<https://f.test/u/7>"
        assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert headers[ID_HEADER] == "<m7@music.test>"  # SES writes its own Message-ID
        assert headers["X-Campaign"].isascii() and str(make_header(decode_header(headers["X-Campaign"]))) == "Café"
        assert first["tags"] == {"campaign": "US-r_b"}


def test_only_throttled_and_transient_entries_go_again(fake_aws_env):
    faults = {"throttled": {address(1): 2}, "transient": {address(2): 1}, "rejected": {address(3)}}
    with ses_standin.running(**faults) as (url, state):
        results = sender(url).send([message(i) for i in range(5)])
        assert [r.status for r in results] == ["sent", "sent", "sent", "failed", "sent"]
        assert results[3].reason == "SES MESSAGE_REJECTED: Email address is on the suppression list."
        assert [c["entries"] for c in state.calls] == [5, 2, 1]
        assert sorted(a["to"] for a in state.accepted) == sorted(address(i) for i in (0, 1, 2, 4))


def test_transient_past_the_attempts_is_left_for_a_later_retry(fake_aws_env):
    with ses_standin.running(transient={address(0): 99}) as (url, state):
        results = sender(url, max_attempts=3).send([message(0), message(1)])
        assert results[0].status == "retry"
        assert results[0].reason == "SES TRANSIENT_FAILURE: Please try again. (after 3 attempts)"
        assert results[1].status == "sent"
        assert [c["entries"] for c in state.calls] == [2, 1, 1]


def test_a_paused_account_is_left_for_later_and_an_unverified_sender_fails(fake_aws_env):
    statuses = {address(0): "ACCOUNT_SENDING_PAUSED", address(1): "MAIL_FROM_DOMAIN_NOT_VERIFIED"}
    with ses_standin.running(statuses=statuses) as (url, state):
        results = sender(url).send([message(i) for i in range(3)])
        assert [r.status for r in results] == ["retry", "failed", "sent"]
        assert results[0].reason.startswith("SES ACCOUNT_SENDING_PAUSED") and "attempts" not in results[0].reason
        assert results[1].reason.startswith("SES MAIL_FROM_DOMAIN_NOT_VERIFIED")
        assert len(state.calls) == 1  # a paused account does not resume within seconds: no retry now


def test_throttled_calls_are_retried_whole_a_500_never(fake_aws_env):
    """A throttled call was refused before anything was taken: botocore sends it again. A 500 may come
    after SES took entries: no retry, the call's messages are unknown."""
    with ses_standin.running(throttle_calls=2) as (url, state):
        assert [r.status for r in sender(url).send([message(i) for i in range(3)])] == ["sent"] * 3
        assert [c["status"] for c in state.calls] == [429, 429, 200]
    with ses_standin.running(throttle_calls=99) as (url, state):
        results = sender(url, max_attempts=2).send([message(0)])
        assert results[0].status == "retry" and "TooManyRequestsException" in results[0].reason
        assert len(state.calls) == 2 and not state.accepted
    with ses_standin.running(server_errors=1) as (url, state):
        results = sender(url).send([message(i) for i in range(3)])
        assert [r.status for r in results] == ["unknown"] * 3 and "InternalFailure" in results[0].reason
        assert [c["status"] for c in state.calls] == [500]


def test_a_read_timeout_after_accepting_is_unknown_and_not_sent_again(fake_aws_env):
    with ses_standin.running(timeout_after_accept=1, stall_s=2.0) as (url, state):
        results = sender(url, read_timeout_s=0.5).send([message(i) for i in range(4)])
        assert [r.status for r in results] == ["unknown"] * 4 and "may have taken" in results[0].reason
        assert len(state.calls) == 1  # botocore did not send it again
        assert sorted(a["to"] for a in state.accepted) == [address(i) for i in range(4)]


def test_a_500_after_accepting_some_is_unknown_for_the_call(fake_aws_env):
    with ses_standin.running(error_after_accept=1, accepted_before_error=2) as (url, state):
        results = sender(url).send([message(i) for i in range(5)])
        assert [r.status for r in results] == ["unknown"] * 5
        assert [c["status"] for c in state.calls] == [500]
        assert [a["to"] for a in state.accepted] == [address(0), address(1)]


def test_faults_change_through_the_control_endpoint(fake_aws_env):
    import json
    import urllib.request
    with ses_standin.running() as (url, state):
        request = urllib.request.Request(f"{url}/_standin/faults", data=json.dumps(
            {"error_after_accept": 1, "accepted_before_error": 0}).encode(), method="POST")
        assert urllib.request.urlopen(request).status == 200
        assert [r.status for r in sender(url).send([message(0)])] == ["unknown"] and not state.accepted
        assert [r.status for r in sender(url).send([message(0)])] == ["sent"]


def test_only_safe_failures_are_retried_by_botocore(fake_aws_env):
    """The client's retry checker, read from botocore's own contexts: a refused connection is retried
    (nothing left), a read timeout or a dropped connection after sending is not; GetAccount keeps the
    standard conditions."""
    from botocore.exceptions import ConnectionClosedError, ReadTimeoutError
    from botocore.retries.standard import RetryContext

    from music_feedback.delivery.email.ses import _SendBulkRetries
    client = sender("http://127.0.0.1:9").client()
    bulk, account = (client.meta.service_model.operation_model(n) for n in ("SendBulkEmail", "GetAccount"))
    checker = _SendBulkRetries(5)

    def retried(op, exc=None, status=None, code=None):
        class Response:
            status_code = status
        parsed = {"Error": {"Code": code}} if code else None
        return checker.is_retryable(RetryContext(attempt_number=1, operation_model=op, caught_exception=exc,
                                                 http_response=Response() if status else None,
                                                 parsed_response=parsed))
    from botocore.exceptions import EndpointConnectionError
    assert retried(bulk, EndpointConnectionError(endpoint_url="x"))
    assert retried(bulk, status=429, code="TooManyRequestsException")
    assert not retried(bulk, ReadTimeoutError(endpoint_url="x"))
    assert not retried(bulk, ConnectionClosedError(endpoint_url="x"))
    assert not retried(bulk, status=500, code="InternalFailure")
    assert retried(account, ReadTimeoutError(endpoint_url="x")) and retried(account, status=500)


def test_a_call_refused_for_one_entry_fails_that_message_only(fake_aws_env):
    with ses_standin.running(malformed={address(6)}) as (url, state):
        results = sender(url).send([message(i) for i in range(10)])
        assert [r.status for r in results] == ["sent"] * 6 + ["failed"] + ["sent"] * 3
        assert "BadRequestException" in results[6].reason and address(6) in results[6].reason
        assert len(state.accepted) == 9


def test_one_call_per_sender_unless_one_sender_is_configured(fake_aws_env):
    other = "Other <other@music.test>"
    messages = [message(0), replace(message(1), sender=other), message(2)]
    with ses_standin.running() as (url, state):
        assert [r.status for r in sender(url).send(messages)] == ["sent"] * 3
        assert sorted((a["from"], a["to"]) for a in state.accepted) == sorted([
            (other, address(1)), (SENDER, address(0)), (SENDER, address(2))])
        assert len(state.calls) == 2
    with ses_standin.running() as (url, state):
        sender(url, from_address="fixed@music.test").send(messages)
        assert {a["from"] for a in state.accepted} == {"fixed@music.test"} and len(state.calls) == 1


def test_headers_ses_would_refuse_fail_the_message_before_any_call(fake_aws_env):
    bad = replace(message(1), headers={"Bad:Name": "x"})
    with ses_standin.running() as (url, state):
        results = sender(url).send([message(0), bad])
        assert [r.status for r in results] == ["sent", "failed"] and "Bad:Name" in results[1].reason
        assert [c["entries"] for c in state.calls] == [1]


@pytest.mark.parametrize("configured", [200.0, None])  # None: the account's MaxSendRate
def test_pacing_across_threads_stays_under_the_send_rate(fake_aws_env, configured):
    with ses_standin.running(max_send_rate=200.0) as (url, state):
        started = time.monotonic()
        results = send_all(sender(url, max_send_rate=configured), [message(i) for i in range(100)], threads=2)
        elapsed = time.monotonic() - started
        assert [r.status for r in results] == ["sent"] * 100
        assert elapsed >= 0.4  # 100 at 200/s: about 0.5 s, however the two threads interleave
        t0, before = state.calls[0]["at"], 0
        for call in state.calls:  # what went before each call fits in the time since the first (±50 ms)
            assert before <= 200 * (call["at"] - t0) + 10
            before += call["entries"]


def test_an_unknown_configuration_set_names_the_setting(fake_aws_env):
    with ses_standin.running() as (url, state):
        s = SESv2Sender(region="us-east-1", endpoint_url=url, configuration_set="missing")
        with pytest.raises(SESConfigError, match="configuration set 'missing'.*MUSIC_FEEDBACK_SES_CONFIGURATION_SET"):
            s.send([message(0)])
        assert not state.accepted


def test_a_configuration_set_deleted_mid_send_keeps_what_went(fake_aws_env):
    """Raising would drop the first message's `sent`, and a resumed run would send it twice."""
    with ses_standin.running(throttled={address(1): 1}, sets_deleted_after=1) as (url, state):
        results = sender(url).send([message(0), message(1)])
        assert [r.status for r in results] == ["sent", "retry"]
        assert "MUSIC_FEEDBACK_SES_CONFIGURATION_SET" in results[1].reason
        with pytest.raises(SESConfigError, match="configuration set 'feedback-events' does not exist"):
            sender(url).send([message(2)])  # nothing went: say so


def test_a_wrong_endpoint_or_region_names_the_setting(fake_aws_env):
    with pytest.raises(SESConfigError, match="not reachable.*MUSIC_FEEDBACK_SES_ENDPOINT"):
        SESv2Sender(region="us-east-1", endpoint_url="http://127.0.0.1:9", max_attempts=1).send([message(0)])
    with pytest.raises(SESConfigError, match="region 'not a region!'.*MUSIC_FEEDBACK_SES_REGION"):
        SESv2Sender(region="not a region!", max_attempts=1).send([message(0)])
    with pytest.raises(SESConfigError, match="endpoint 'not a url'.*MUSIC_FEEDBACK_SES_ENDPOINT"):
        SESv2Sender(region="us-east-1", endpoint_url="not a url", max_attempts=1).send([message(0)])


def test_credentials_missing_or_refused_say_so(fake_aws_env, monkeypatch):
    with ses_standin.running(access_denied=True) as (url, _):
        with pytest.raises(SESConfigError, match="refused the AWS credentials.*AccessDeniedException"):
            SESv2Sender(region="us-east-1", endpoint_url=url).send([message(0)])
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with ses_standin.running() as (url, state):
        with pytest.raises(SESConfigError, match="no AWS credentials"):
            SESv2Sender(region="us-east-1", endpoint_url=url).send([message(0)])
        assert not state.calls


@pytest.mark.unit
def test_from_env_reads_the_settings_and_names_a_bad_one(monkeypatch):
    for var in ("MUSIC_FEEDBACK_SES_REGION", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(SESConfigError, match="MUSIC_FEEDBACK_SES_REGION"):
        SESv2Sender.from_env()
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("MUSIC_FEEDBACK_SES_ENDPOINT", "http://127.0.0.1:1")
    monkeypatch.setenv("MUSIC_FEEDBACK_SES_CONFIGURATION_SET", "events")
    monkeypatch.setenv("MUSIC_FEEDBACK_SES_MAX_SEND_RATE", "14")
    s = SESv2Sender.from_env()
    assert (s.region, s.endpoint_url, s.configuration_set, s.max_send_rate) == (
        "eu-west-1", "http://127.0.0.1:1", "events", 14.0)
    monkeypatch.setenv("MUSIC_FEEDBACK_SES_REGION", "us-west-2")
    assert SESv2Sender.from_env().region == "us-west-2"
    monkeypatch.setenv("MUSIC_FEEDBACK_SES_MAX_SEND_RATE", "fast")
    with pytest.raises(SESConfigError, match="MUSIC_FEEDBACK_SES_MAX_SEND_RATE.*'fast'"):
        SESv2Sender.from_env()


def test_the_stand_in_refuses_like_ses_with_modelled_errors(fake_aws_env):
    """The faults above reach the adapter as botocore's modelled exceptions, as SES's would."""
    entry = {"Destination": {"ToAddresses": [address(0)]}}
    content = {"Template": {"TemplateContent": {"Subject": "{{subject}}", "Text": "{{text}}"}, "TemplateData": "{}"}}
    with ses_standin.running(throttle_calls=1) as (url, state):
        client = boto3.client("sesv2", region_name="us-east-1", endpoint_url=url,
                              config=Config(retries={"total_max_attempts": 1}))
        ok = {"FromEmailAddress": SENDER, "DefaultContent": content}
        with pytest.raises(client.exceptions.TooManyRequestsException):
            client.send_bulk_email(**ok, BulkEmailEntries=[entry])
        with pytest.raises(client.exceptions.BadRequestException, match="between 1 and 50"):
            client.send_bulk_email(**ok, BulkEmailEntries=[entry] * 51)
        with pytest.raises(client.exceptions.BadRequestException, match="FromEmailAddress"):
            client.send_bulk_email(DefaultContent=content, BulkEmailEntries=[entry])
        with pytest.raises(client.exceptions.BadRequestException, match="unsupported operations"):
            client.send_bulk_email(FromEmailAddress=SENDER, BulkEmailEntries=[entry], DefaultContent={"Template": {
                "TemplateContent": {"Subject": "{{#if a}}x{{/if}}", "Text": "t"}, "TemplateData": "{}"}})
        with pytest.raises(client.exceptions.NotFoundException, match="<nope> does not exist"):
            client.send_bulk_email(**ok, BulkEmailEntries=[entry], ConfigurationSetName="nope")
        assert client.send_bulk_email(**ok, BulkEmailEntries=[entry])["BulkEmailEntryResults"][0]["Status"] == "SUCCESS"
        assert [c["status"] for c in state.calls] == [429, 400, 400, 400, 404, 200]
        assert state.accepted[0]["subject"] == ""  # no replacement data: the placeholder renders empty


def test_a_day_of_email_through_ses(tmp_path, small_warehouse, fake_aws_env):
    """The whole delivery on the SES adapter: the ledger's exactly-once holds with per-entry results."""
    from music_feedback.delivery.holdout import is_held_out
    from music_feedback_tests.delivery_support import DAY, PROGRAM, delivery, seed_day, stores
    listeners = [lid for lid in seed_day(tmp_path, small_warehouse, 80) if not is_held_out(PROGRAM, lid)]
    faults = {"throttled": {f"listener-{listeners[0]}@listeners.test": 1},
              "rejected": {f"listener-{listeners[1]}@listeners.test"}}
    with ses_standin.running(**faults) as (url, state):
        report = delivery(tmp_path, small_warehouse, sender=sender(url)).run(DAY, "US")
        assert report.counts["sent"] == len(listeners) - 1 == len(state.accepted)
        assert delivery(tmp_path, small_warehouse, sender=sender(url)).run(DAY, "US").counts["sent"] == 0
    _, feedback = stores(tmp_path)
    assert feedback.ledger_counts(PROGRAM.program_id, DAY.isoformat(), "email")["failed"] == 1


def test_a_day_with_ambiguous_failures_delivers_each_message_once(tmp_path, small_warehouse, fake_aws_env,
                                                                  moto_endpoint):
    """A call SES took whole but answered too late, another it took in part before a 500: their messages
    are unknown, SES's Send events (SNS -> SQS on moto's server) settle them, and only those SES never took
    go again. Every listener gets exactly one message."""
    import uuid

    from music_feedback.delivery.holdout import is_held_out
    from music_feedback_tests.delivery_support import DAY, PROGRAM, delivery, seed_day, stores
    listeners = [lid for lid in seed_day(tmp_path, small_warehouse, 80) if not is_held_out(PROGRAM, lid)]
    aws = {"region_name": "us-east-1", "endpoint_url": moto_endpoint}
    sqs, sns = boto3.client("sqs", **aws), boto3.client("sns", **aws)
    name = f"ses-events-{uuid.uuid4().hex[:8]}"
    queue = sqs.create_queue(QueueName=name)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    topic = sns.create_topic(Name=name)["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    faults = {"timeout_after_accept": 1, "stall_s": 2.0, "error_after_accept": 1, "accepted_before_error": 10,
              "events_topic_arn": topic, "events_endpoint": moto_endpoint}
    with ses_standin.running(**faults) as (url, state):
        ses = sender(url, read_timeout_s=0.5, events_queue_url=queue, events_endpoint_url=moto_endpoint)
        report = delivery(tmp_path, small_warehouse, sender=ses, unknown_grace_s=0.0,
                          reconcile_wait_s=3.0).run(DAY, "US")
        delivered = [a["to"] for a in state.accepted]
        assert len(delivered) == len(set(delivered)) == len(listeners)  # no one twice, no one left out
        assert report.counts["sent_unknown"] == report.counts["reconciled_sent"] + report.counts["reconciled_resend"]
        assert report.counts["reconciled_resend"] >= 1 and report.counts["unknown"] == 0
        assert 500 in [c["status"] for c in state.calls]
        again = delivery(tmp_path, small_warehouse, sender=ses, unknown_grace_s=0.0, reconcile_wait_s=1.0)
        assert again.run(DAY, "US").counts["sent"] == 0 and len(state.accepted) == len(listeners)
    _, feedback = stores(tmp_path)
    assert feedback.ledger_counts(PROGRAM.program_id, DAY.isoformat(), "email")["sent"] == len(listeners)


def test_without_an_events_queue_unknown_sends_stay_unknown(tmp_path, small_warehouse, fake_aws_env):
    """At most once: with no events to tell, a message SES may have taken is never sent again."""
    from music_feedback.delivery.holdout import is_held_out
    from music_feedback_tests.delivery_support import DAY, PROGRAM, delivery, seed_day, stores
    listeners = [lid for lid in seed_day(tmp_path, small_warehouse, 30) if not is_held_out(PROGRAM, lid)]
    with ses_standin.running(server_errors=1) as (url, state):
        report = delivery(tmp_path, small_warehouse, sender=sender(url), workers=1).run(DAY, "US")
        assert report.counts["unknown"] == len(listeners) and not state.accepted and len(state.calls) == 1
        assert delivery(tmp_path, small_warehouse, sender=sender(url)).run(DAY, "US").counts["sent"] == 0
    _, feedback = stores(tmp_path)
    assert feedback.ledger_counts(PROGRAM.program_id, DAY.isoformat(), "email") .get("unknown") == len(listeners)
