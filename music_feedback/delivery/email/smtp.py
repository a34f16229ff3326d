"""SMTP to a configured server: one connection per sending thread, reused, reopened after a drop.

A 4xx reply or a dropped connection is transient (retried within the lateness window); a 5xx reply is
permanent and recorded with the server's words."""
from __future__ import annotations

import smtplib
import ssl
import threading
from email.utils import parseaddr

from pydantic import Field

from music_feedback.delivery.email.mime import to_bytes
from music_feedback.delivery.email.port import EmailMessage, EmailSender, SendResult


class SMTPSender(EmailSender):
    host: str = Field(description='SMTP server host (MUSIC_FEEDBACK_SMTP_HOST).')
    port: int = Field(default=25, description='SMTP server port (MUSIC_FEEDBACK_SMTP_PORT, default 25).')
    username: str | None = Field(default=None, description=(
        'SMTP login; None: no login (MUSIC_FEEDBACK_SMTP_USER).'))
    password: str | None = Field(default=None, description='SMTP password (MUSIC_FEEDBACK_SMTP_PASSWORD).')
    starttls: bool = Field(default=False, description=(
        'Upgrade the connection with STARTTLS (MUSIC_FEEDBACK_SMTP_STARTTLS=1|true|yes).'))
    timeout_s: float = Field(default=30.0, description='Socket timeout of the SMTP connection, in seconds.')

    @property
    def batch_size(self) -> int:
        return 50

    def _connection(self, local: threading.local) -> smtplib.SMTP:
        conn = getattr(local, "conn", None)
        if conn is None:
            try:
                conn = smtplib.SMTP(self.host, self.port, timeout=self.timeout_s)
                if self.starttls:
                    conn.starttls(context=ssl.create_default_context())
                if self.username:
                    conn.login(self.username, self.password or "")
            except smtplib.SMTPAuthenticationError as exc:
                raise RuntimeError(f"SMTP server {self.host}:{self.port} refused the login of {self.username!r} "
                                   f"({exc.smtp_code} {exc.smtp_error!r}): check MUSIC_FEEDBACK_SMTP_USER and "
                                   "MUSIC_FEEDBACK_SMTP_PASSWORD") from None
            local.conn = conn
        return conn

    def _drop(self, local: threading.local) -> None:
        conn, local.conn = getattr(local, "conn", None), None
        if conn is not None:
            try:
                conn.close()
            except OSError:
                pass

    def send(self, messages: list[EmailMessage]) -> list[SendResult]:
        local = _THREADS.setdefault((id(self), threading.get_ident()), threading.local())
        return [self._send_one(local, m) for m in messages]

    def _send_one(self, local: threading.local, message: EmailMessage) -> SendResult:
        try:
            conn = self._connection(local)
            refused = conn.sendmail(parseaddr(message.sender)[1], [parseaddr(message.to)[1]], to_bytes(message))
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            return self._reply(message, code, text)
        except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:
            return self._reply(message, exc.smtp_code, exc.smtp_error)
        except (smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError, OSError) as exc:
            self._drop(local)
            return SendResult(message.message_id, "retry", f"connection to {self.host}:{self.port} failed: {exc}")
        except smtplib.SMTPResponseException as exc:
            self._drop(local)
            return self._reply(message, exc.smtp_code, exc.smtp_error)
        if refused:
            code, text = next(iter(refused.values()))
            return self._reply(message, code, text)
        return SendResult(message.message_id, "sent")

    @staticmethod
    def _reply(message: EmailMessage, code: int, text: bytes | str) -> SendResult:
        words = text.decode(errors="replace") if isinstance(text, bytes) else str(text)
        status = "retry" if 400 <= code < 500 else "failed"
        return SendResult(message.message_id, status, f"SMTP {code} {words}".strip())

    def describe(self) -> str:
        return f"SMTP server {self.host}:{self.port}"


_THREADS: dict[tuple[int, int], threading.local] = {}
