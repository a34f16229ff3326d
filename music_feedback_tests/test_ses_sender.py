"""The SES v2 adapter through the real boto3 client against the SES v2 stand-in."""
from __future__ import annotations

import time

import pytest

from music_feedback.delivery.email.port import EmailMessage
from music_feedback.delivery.email.ses import SESConfigError, SESv2Sender
from music_feedback_tests.servers import ses_standin


def message(i: int) -> EmailMessage:
    return EmailMessage(message_id=f"<m{i}@x>", sender="Music Feedback <feedback@music.test>",
                        to=f"listener-{i}@listeners.test", subject=f"What did you think of Rock & <Roll> {i}?",
                        html=f"<p>Hi <b>there</b> &amp; {i}</p>", text=f"Hi there & {i}", campaign="US-r&b",
                        headers={"List-Unsubscribe": f"<https://f.test/u/{i}>",
                                 "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"})


def sender(url: str, **kw) -> SESv2Sender:
    return SESv2Sender(region="us-east-1", endpoint_url=url, configuration_set="feedback-events",
                       base_delay_s=0.01, **kw)


def send_all(s: SESv2Sender, messages: list[EmailMessage]):
    return [r for i in range(0, len(messages), s.batch_size) for r in s.send(messages[i:i + s.batch_size])]


def test_sends_in_calls_of_50_with_content_and_headers_intact(fake_aws_env):
    with ses_standin.running() as (url, state):
        results = send_all(sender(url), [message(i) for i in range(120)])
        assert [r.status for r in results] == ["sent"] * 120
        assert state.calls == 3 and len(state.accepted) == 120
        first = state.accepted[0]
        assert first["subject"] == "What did you think of Rock & <Roll> 0?"  # not HTML-escaped
        assert first["html"] == "<p>Hi <b>there</b> &amp; 0</p>" and first["text"] == "Hi there & 0"
        assert first["headers"] == {"List-Unsubscribe": "<https://f.test/u/0>",
                                    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
        assert first["configuration_set"] == "feedback-events" and first["tags"] == {"campaign": "US-r_b"}


def test_only_throttled_and_transient_entries_are_retried(fake_aws_env):
    faults = ses_standin.Faults(throttled={"listener-1@listeners.test": 2}, transient={"listener-2@listeners.test": 1},
                                rejected={"listener-3@listeners.test"})
    with ses_standin.running(faults) as (url, state):
        results = sender(url).send([message(i) for i in range(5)])
        assert [r.status for r in results] == ["sent", "sent", "sent", "failed", "sent"]
        assert "MESSAGE_REJECTED" in results[3].reason and "suppression list" in results[3].reason
        assert sorted(a["to"] for a in state.accepted) == sorted(f"listener-{i}@listeners.test" for i in (0, 1, 2, 4))


def test_transient_past_the_attempts_is_left_for_a_later_retry(fake_aws_env):
    with ses_standin.running(ses_standin.Faults(transient={"listener-0@listeners.test": 99})) as (url, _):
        result = sender(url, max_attempts=3).send([message(0)])[0]
        assert result.status == "retry" and "TRANSIENT_FAILURE" in result.reason


def test_whole_call_throttling_is_retried(fake_aws_env):
    with ses_standin.running(ses_standin.Faults(throttle_calls=2)) as (url, state):
        assert [r.status for r in sender(url).send([message(i) for i in range(3)])] == ["sent"] * 3
        assert state.calls == 3


def test_pacing_stays_under_the_send_rate(fake_aws_env):
    with ses_standin.running(ses_standin.Faults(max_send_rate=100)) as (url, _):
        s = sender(url)
        started = time.perf_counter()
        send_all(s, [message(i) for i in range(200)])
        assert time.perf_counter() - started >= 0.9  # 200 at 100/s: the first 100 burst, the rest paced


def test_configuration_errors_name_the_setting(fake_aws_env, monkeypatch):
    with ses_standin.running() as (url, _):
        with pytest.raises(SESConfigError, match="configuration set 'missing'.*MUSIC_FEEDBACK_SES_CONFIGURATION_SET"):
            SESv2Sender(region="us-east-1", endpoint_url=url, configuration_set="missing").send([message(0)])
    with pytest.raises(SESConfigError, match="cannot be reached.*MUSIC_FEEDBACK_SES_ENDPOINT"):
        SESv2Sender(region="us-east-1", endpoint_url="http://127.0.0.1:9", max_attempts=1).send([message(0)])
    monkeypatch.delenv("MUSIC_FEEDBACK_SES_REGION", raising=False)
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    with pytest.raises(SESConfigError, match="MUSIC_FEEDBACK_SES_REGION"):
        SESv2Sender.from_env()
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with ses_standin.running() as (url, _):
        with pytest.raises(SESConfigError, match="no AWS credentials"):
            SESv2Sender(region="us-east-1", endpoint_url=url).send([message(0)])


def test_a_day_of_email_through_ses(tmp_path, small_warehouse, fake_aws_env):
    """The whole delivery on the SES adapter: the ledger's exactly-once holds with per-entry results."""
    from music_feedback.delivery.holdout import is_held_out
    from music_feedback_tests.delivery_support import DAY, PROGRAM, delivery, seed_day, stores
    listeners = [lid for lid in seed_day(tmp_path, small_warehouse, 80) if not is_held_out(PROGRAM, lid)]
    faults = ses_standin.Faults(throttled={f"listener-{listeners[0]}@listeners.test": 1},
                                rejected={f"listener-{listeners[1]}@listeners.test"})
    with ses_standin.running(faults) as (url, state):
        report = delivery(tmp_path, small_warehouse, sender=sender(url)).run(DAY, "US")
        assert report.counts["sent"] == len(listeners) - 1 == len(state.accepted)
        assert delivery(tmp_path, small_warehouse, sender=sender(url)).run(DAY, "US").counts["sent"] == 0
    _, feedback = stores(tmp_path)
    assert feedback.ledger_counts(PROGRAM.program_id, DAY.isoformat(), "email")["failed"] == 1
