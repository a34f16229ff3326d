"""The email sender port's contract: every adapter (the Maildir outbox, SMTP on a real aiosmtpd server,
SES v2 on its stand-in through boto3) delivers a rendered message whole, headers included."""
from __future__ import annotations

import email
from email import policy

import pytest

from music_feedback.delivery.email.maildir import MaildirSender
from music_feedback.delivery.email.port import EmailMessage
from music_feedback_tools.standins import ses as ses_standin
from music_feedback_tests.test_email_delivery import free_port

pytestmark = pytest.mark.unit


def message(i: int) -> EmailMessage:
    return EmailMessage(message_id=f"<m{i}@music.test>", sender="Music Feedback <feedback@music.test>",
                        to=f"listener-{i}@listeners.test", subject=f"What did you think of Rock & <Roll> {i}?",
                        html=f"<p>Hi <b>there</b> &amp; {i}</p>", text=f"Hi there & {i}", campaign="US-rock",
                        headers={"List-Unsubscribe": f"<https://f.test/u/{i}>",
                                 "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"})


class Received:
    """What each adapter's far end holds, as (to, subject, html, text, headers)."""

    def __init__(self):
        self.messages: list[tuple] = []


@pytest.fixture(params=["maildir", pytest.param("smtp", marks=pytest.mark.integration),
                        pytest.param("ses", marks=pytest.mark.integration)])
def adapter(request, tmp_path, fake_aws_env):
    received = Received()
    if request.param == "maildir":
        sender = MaildirSender(path=str(tmp_path / "outbox"))
        yield sender, lambda: [_parsed(p.read_bytes()) for p in sorted((tmp_path / "outbox" / "new").iterdir())]
    elif request.param == "smtp":
        from aiosmtpd.controller import Controller

        from music_feedback.delivery.email.smtp import SMTPSender

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                received.messages.append(_parsed(envelope.original_content))
                return "250 OK"

        port = free_port()
        controller = Controller(Handler(), hostname="127.0.0.1", port=port)
        controller.start()
        yield SMTPSender(host="127.0.0.1", port=port, timeout_s=5), lambda: received.messages
        controller.stop()
    else:
        from music_feedback.delivery.email.ses import SESv2Sender
        with ses_standin.running() as (url, state):
            yield (SESv2Sender(region="us-east-1", endpoint_url=url, max_send_rate=1000.0),
                   lambda: [(a["to"], a["subject"], a["html"], a["text"], a["headers"]) for a in state.accepted])


def _parsed(raw: bytes) -> tuple:
    msg = email.message_from_bytes(raw, policy=policy.default)
    headers = {k: str(msg[k]) for k in ("List-Unsubscribe", "List-Unsubscribe-Post")}
    return (str(msg["To"]), str(msg["Subject"]), msg.get_body(("html",)).get_content().strip(),
            msg.get_body(("plain",)).get_content().strip(), headers)


def test_every_adapter_delivers_the_message_whole(adapter):
    sender, received = adapter
    messages = [message(i) for i in range(3)]
    assert [r.status for r in sender.send(messages)] == ["sent"] * 3
    got = sorted(received())
    assert len(got) == 3
    for (to, subject, html, text, headers), m in zip(got, messages):
        assert (to, subject, html, text) == (m.to, m.subject, m.html, m.text)
        assert headers["List-Unsubscribe"] == m.headers["List-Unsubscribe"]
        assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert sender.batch_size >= 1 and sender.describe()
