"""The email channel end to end on real outboxes: exactly once across re-runs and a SIGKILL, the lateness
window, send-time policy, the holdout, and SMTP against a real aiosmtpd server that refuses and drops."""
from __future__ import annotations

import email
import os
import re
import signal
import socket
import subprocess
import sys
import time
from email import policy
from pathlib import Path

import pytest

from music_feedback.delivery.email.smtp import SMTPSender
from music_feedback.delivery.holdout import is_held_out
from music_feedback_tests.delivery_support import DAY, PROGRAM, delivery, seed_day, stores
from music_feedback_tests.service_support import LINKS

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def outbox(home: Path) -> list[Path]:
    folder = home / "outbox" / "new"
    return sorted(folder.iterdir()) if folder.exists() else []


def test_sends_each_request_once_and_a_rerun_sends_nothing(tmp_path, small_warehouse):
    listeners = seed_day(tmp_path, small_warehouse, 120)
    report = delivery(tmp_path, small_warehouse).run(DAY, "US")
    _, feedback = stores(tmp_path)
    counts = feedback.ledger_counts(PROGRAM.program_id, DAY.isoformat(), "email")
    held = sum(is_held_out(PROGRAM, lid) for lid in listeners)
    assert counts == {"sent": 120 - held, **({"held_out": held} if held else {})}
    assert report.counts["sent"] == len(outbox(tmp_path)) == 120 - held
    assert delivery(tmp_path, small_warehouse).run(DAY, "US").counts["sent"] == 0
    assert len(outbox(tmp_path)) == 120 - held

    msg = email.message_from_bytes(outbox(tmp_path)[0].read_bytes(), policy=policy.default)
    assert msg["Subject"].startswith("What did you think of Track 5")
    assert msg["List-Unsubscribe"].startswith("<https://feedback.test/u/")
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "Share Your Thoughts" in msg.get_body(("html",)).get_content()
    # The unsubscribe link works for a year (feedback.unsubscribeTTLDays), the feedback link for 14 days.
    text = msg.get_body(("plain",)).get_content()
    unsubscribe = LINKS.verify(msg["List-Unsubscribe"].strip("<>").rsplit("/", 1)[1], "unsubscribe")
    feedback_link = LINKS.verify(re.search(r"https://feedback\.test/f/(\S+)", text).group(1), "feedback")
    assert unsubscribe.expires_at - feedback_link.expires_at == (365 - 14) * 86_400
    candidates, _ = stores(tmp_path)
    sent = [r for r in candidates.for_listener(PROGRAM.program_id, listeners[0]) if r["channel"] == "email"]
    assert sent[0]["status"] == ("pending" if is_held_out(PROGRAM, listeners[0]) else "sent")


def test_holdout_is_stable_and_never_sent(tmp_path, small_warehouse):
    listeners = seed_day(tmp_path, small_warehouse, 200)
    delivery(tmp_path, small_warehouse).run(DAY, "US")
    _, feedback = stores(tmp_path)
    held = {lid for lid in listeners if feedback.ledger_row(PROGRAM.program_id, DAY.isoformat(), lid, 500 + listeners.index(lid) % 7, "email")["state"] == "held_out"}
    assert held == {lid for lid in listeners if is_held_out(PROGRAM, lid)}
    assert 0 < len(held) < 30  # about 5% of 200
    sent_to = {email.message_from_bytes(p.read_bytes())["To"] for p in outbox(tmp_path)}
    assert not {f"listener-{lid}@listeners.test" for lid in held} & sent_to


def test_past_the_lateness_window_nothing_is_sent(tmp_path, small_warehouse):
    seed_day(tmp_path, small_warehouse, 30)
    hours = PROGRAM.channel("email").typed_config().max_lateness_hours
    report = delivery(tmp_path, small_warehouse, clock_offset=hours * 3600 + 1).run(DAY, "US")
    assert report.counts["sent"] == 0 and outbox(tmp_path) == []
    _, feedback = stores(tmp_path)
    assert set(feedback.ledger_counts(PROGRAM.program_id, DAY.isoformat(), "email")) <= {"expired", "held_out"}


def test_send_time_check_drops_the_unsubscribed_and_the_answered(tmp_path, small_warehouse):
    listeners = seed_day(tmp_path, small_warehouse, 20)
    sendable = [lid for lid in listeners if not is_held_out(PROGRAM, lid)]
    _, feedback = stores(tmp_path)
    feedback.opt_out(sendable[0], "unsubscribe link", time.time())
    report = delivery(tmp_path, small_warehouse).run(DAY, "US")
    assert report.counts["sent"] == len(sendable) - 1
    assert report.reasons == {"at send time: unsubscribed": 1} or feedback.ledger_row(
        PROGRAM.program_id, DAY.isoformat(), sendable[0], 500, "email")["state"] == "cancelled"


def test_a_voice_prompt_between_the_check_and_the_claim_does_not_pass_the_cap(tmp_path, small_warehouse):
    """Two voice contacts land after the run asked the policy and before it claims: the chunk counts again
    after its claim and cancels its own email, so the listener stays at the cap of two."""
    listeners = seed_day(tmp_path, small_warehouse, 20)
    busy = next(lid for lid in listeners if not is_held_out(PROGRAM, lid))
    run = delivery(tmp_path, small_warehouse)
    store, voiced = run.feedback, []

    class PromptedMeanwhile:
        def __getattr__(self, name):
            return getattr(store, name)

        def claim(self, *args):
            if not voiced:
                at = run.options.clock()
                for track in (900, 901):
                    voiced.append(store.record_contact(PROGRAM.program_id, DAY.isoformat(), "voice-assistant",
                                                       {"listener_id": busy, "track_id": track}, "sent", at))
            return store.claim(*args)
    run.feedback = PromptedMeanwhile()
    report = run.run(DAY, "US")
    assert voiced == ["sent", "sent"]
    assert report.reasons.get("at send time: over_weekly_cap") == 1
    assert store.ledger_row(PROGRAM.program_id, DAY.isoformat(), busy, 500, "email")["state"] == "cancelled"
    at = run.options.clock()
    assert store.contacts_of(PROGRAM.program_id, busy, at - 86_400, at + 86_400) == 2


@pytest.mark.integration
def test_a_sigkill_mid_send_neither_repeats_nor_skips(tmp_path, small_warehouse):
    listeners = seed_day(tmp_path, small_warehouse, 1500)
    expected = len(listeners) - sum(is_held_out(PROGRAM, lid) for lid in listeners)
    child = subprocess.Popen([sys.executable, "-m", "music_feedback_tests.delivery_support", str(tmp_path),
                              str(small_warehouse)], cwd=ROOT)
    deadline = time.time() + 120
    while len(outbox(tmp_path)) < 200 and time.time() < deadline and child.poll() is None:
        time.sleep(0.01)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    before = {p.name: p.stat().st_ino for p in outbox(tmp_path)}
    assert 0 < len(before) < expected, "the kill must land mid-send"
    report = delivery(tmp_path, small_warehouse).run(DAY, "US")
    after = {p.name: p.stat().st_ino for p in outbox(tmp_path)}
    assert len(after) == expected  # nobody skipped
    assert all(after[name] == ino for name, ino in before.items())  # nothing sent before was written again
    assert report.counts["sent"] == expected - len(before)
    _, feedback = stores(tmp_path)
    assert feedback.ledger_counts(PROGRAM.program_id, DAY.isoformat(), "email")["sent"] == expected


class Recorder:
    """An aiosmtpd handler: refuses some recipients for good (550), some once (451), and drops the session
    (421) after `drop_after` messages, once."""

    def __init__(self, refuse: set[str], busy_once: set[str], drop_after: int | None = None):
        self.refuse, self.busy_once, self.drop_after = refuse, set(busy_once), drop_after
        self.received: list[str] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return "550 5.1.1 mailbox unavailable"
        if address in self.busy_once:
            self.busy_once.discard(address)
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.drop_after is not None and len(self.received) == self.drop_after:
            self.drop_after = None
            return "421 4.4.2 closing connection"
        self.received.extend(envelope.rcpt_tos)
        return "250 OK queued"


@pytest.fixture
def smtp_server():
    from aiosmtpd.controller import Controller
    started = []

    def start(handler) -> SMTPSender:
        port = free_port()  # the controller checks itself by connecting, so it needs the real port up front
        controller = Controller(handler, hostname="127.0.0.1", port=port)
        controller.start()
        started.append(controller)
        return SMTPSender(host="127.0.0.1", port=port, timeout_s=5)

    yield start
    for c in started:
        c.stop()


@pytest.mark.integration
def test_smtp_refusals_and_a_dropped_connection(tmp_path, small_warehouse, smtp_server):
    listeners = [lid for lid in seed_day(tmp_path, small_warehouse, 60) if not is_held_out(PROGRAM, lid)]
    addr = lambda lid: f"listener-{lid}@listeners.test"  # noqa: E731
    handler = Recorder(refuse={addr(listeners[0])}, busy_once={addr(listeners[1]), addr(listeners[2])},
                       drop_after=20)
    report = delivery(tmp_path, small_warehouse, sender=smtp_server(handler), workers=2).run(DAY, "US")
    assert sorted(handler.received) == sorted(addr(lid) for lid in listeners[1:])  # each once, retried ones too
    assert report.counts["sent"] == len(listeners) - 1
    _, feedback = stores(tmp_path)
    refused = feedback.ledger_row(PROGRAM.program_id, DAY.isoformat(), listeners[0], 500, "email")
    assert refused["state"] == "failed" and "550" in refused["reason"] and "mailbox unavailable" in refused["reason"]


def test_smtp_server_down_fails_with_the_reason_after_retries(tmp_path, small_warehouse):
    listeners = [lid for lid in seed_day(tmp_path, small_warehouse, 5) if not is_held_out(PROGRAM, lid)]
    port = free_port()  # nothing listens there
    report = delivery(tmp_path, small_warehouse, sender=SMTPSender(host="127.0.0.1", port=port, timeout_s=1),
                      max_attempts=2).run(DAY, "US")
    assert report.counts["sent"] == 0
    _, feedback = stores(tmp_path)
    row = feedback.ledger_row(PROGRAM.program_id, DAY.isoformat(), listeners[0], 500, "email")
    assert row["state"] == "failed" and "gave up after 2 attempt(s)" in row["reason"] and "refused" in row["reason"].lower()


def test_the_days_limit_holds_across_a_changed_batch(tmp_path, small_warehouse):
    """A re-run batch can move new rows into the day's top; the day still asks at most `limit`."""
    from datetime import datetime, timezone

    from music_feedback.delivery.email.plan import plan
    from music_feedback_tests.delivery_support import PROGRAM as P
    small = P.model_copy(update={"channels": [c.model_copy(update={"config": {**c.config, "limit": 10}})
                                              if c.type == "email" else c for c in P.channels]})
    seed_day(tmp_path, small_warehouse, 30)
    candidates, feedback = stores(tmp_path)
    now = datetime(2026, 11, 24, tzinfo=timezone.utc)
    assert plan(small, candidates, feedback, DAY, now)["added"] == 10
    # the batch again, now with a better candidate at the top: the day has no room left for it
    from music_feedback_tests.delivery_support import eligible_listeners
    from music_feedback_tests.service_support import candidate, frame
    rows = candidates.for_channel(P.program_id, "email", limit=100)
    newcomer = eligible_listeners(small_warehouse, 31)[-1]
    extra = candidate(newcomer, 500, 0.999, marketplace="US", expires_at=rows[0]["expires_at"])
    keep = [{k: r[k] for k in extra} for r in rows]
    candidates.put_batch(P.program_id, DAY.isoformat(), frame(keep + [extra]))
    assert plan(small, candidates, feedback, DAY, now)["added"] == 0
    assert sum(feedback.ledger_counts(P.program_id, DAY.isoformat(), "email").values()) == 10
