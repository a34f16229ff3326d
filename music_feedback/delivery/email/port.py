"""The email sender port: rendered messages in, one result per message out.

Adapters: `MaildirSender` (local outbox), `SMTPSender` (any SMTP server) and `SESv2Sender` (SES v2
SendBulkEmail). All pass music_feedback_tests/test_email_senders.py.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Iterable, Literal

from dagster import ConfigurableResource

# sent: accepted by the server. retry: throttled or transient, worth another try within the lateness
# window. failed: permanent (a rejected address, a refused message); `reason` carries the server's words.
# unknown: the server may have taken it (a read timeout, a 5xx after the request went): never sent again
# blindly; the service's delivery events settle it (`events`).
SendStatus = Literal["sent", "retry", "failed", "unknown"]


@dataclass(frozen=True)
class EmailMessage:
    """One rendered message. `message_id` is derived from the delivery ledger's key, so a re-send after a
    crash carries the same Message-ID (receivers and the outbox can recognise it)."""
    message_id: str
    sender: str
    to: str
    subject: str
    html: str
    text: str
    campaign: str
    headers: dict[str, str] = field(default_factory=dict)  # List-Unsubscribe, List-Unsubscribe-Post, ...


@dataclass(frozen=True)
class SendResult:
    message_id: str
    status: SendStatus
    reason: str = ""


class EmailSender(ConfigurableResource):
    """Port. `send` may be called from several threads at once; each call gets at most `batch_size`."""

    @property
    def batch_size(self) -> int:
        return 50

    @abc.abstractmethod
    def send(self, messages: list[EmailMessage]) -> list[SendResult]:
        """Send `messages`; one result per message, in order. Never raises for a message the server
        refused; raises only when the service itself is misconfigured (the message names the setting)."""

    def delivered(self, message_ids: list[str]) -> set[str] | None:
        """Which of these Message-IDs the service already holds, or None when it cannot tell (SMTP, SES).
        Lets a resumed delivery settle messages that were in flight when the process died."""
        return None

    def reports_events(self) -> bool:
        """Whether `events` can tell which messages the service took (SES with an events queue)."""
        return False

    def events(self, message_ids: Iterable[str], wait_for: Iterable[str] = (), wait_s: float = 0.0
               ) -> dict[str, tuple[str, str]] | None:
        """The service's delivery events for these Message-IDs: {message_id: (sent | failed, reason)}, or None
        when it publishes none. Waits up to `wait_s` for an event of each of `wait_for`."""
        return None

    def describe(self) -> str:
        return type(self).__name__
