"""The embedded email service: a local Maildir outbox a person can open with any mail client (mutt -f).

Each message is written to tmp/ and renamed into new/ (Maildir's atomic delivery), under a name derived
from its Message-ID, so a resumed delivery can tell which in-flight messages were written."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from pydantic import Field

from music_feedback.delivery.email.mime import to_bytes
from music_feedback.delivery.email.port import EmailMessage, EmailSender, SendResult


def file_name(message_id: str) -> str:
    return hashlib.sha256(message_id.encode()).hexdigest()[:40] + ".music-feedback"


class MaildirSender(EmailSender):
    path: str = Field(description=(
        'The local Maildir outbox the messages are written to (MUSIC_FEEDBACK_HOME/outbox).'))

    @property
    def batch_size(self) -> int:
        return 200

    def _dirs(self) -> Path:
        root = Path(self.path)
        for sub in ("tmp", "new", "cur"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        return root

    def send(self, messages: list[EmailMessage]) -> list[SendResult]:
        root, results = self._dirs(), []
        for message in messages:
            name = file_name(message.message_id)
            tmp = root / "tmp" / f"{name}.{os.getpid()}"
            try:
                tmp.write_bytes(to_bytes(message))
                os.replace(tmp, root / "new" / name)
                results.append(SendResult(message.message_id, "sent"))
            except OSError as exc:  # a full disk is worth retrying; the ledger keeps the reason
                results.append(SendResult(message.message_id, "retry", f"outbox write failed: {exc}"))
        return results

    def delivered(self, message_ids: list[str]) -> set[str]:
        root = self._dirs()
        cur = {p.name.split(":")[0] for p in (root / "cur").iterdir()} if any((root / "cur").iterdir()) else set()
        return {m for m in message_ids
                if (root / "new" / file_name(m)).exists() or file_name(m) in cur}

    def describe(self) -> str:
        return f"Maildir outbox {self.path}"
