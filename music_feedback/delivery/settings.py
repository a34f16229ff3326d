"""Delivery settings from the environment: where links point, how addresses are formed, which email
service sends."""
from __future__ import annotations

import os
from urllib.parse import urlsplit

from music_feedback import settings
from music_feedback.delivery.email.maildir import MaildirSender
from music_feedback.delivery.email.port import EmailSender
from music_feedback.delivery.email.smtp import SMTPSender

PUBLIC_URL_VAR = "MUSIC_FEEDBACK_PUBLIC_URL"
ADDRESS_VAR = "MUSIC_FEEDBACK_EMAIL_ADDRESS_TEMPLATE"
EMAIL_SERVICE_VAR = "MUSIC_FEEDBACK_EMAIL_SERVICE"
SMTP_VARS = ("MUSIC_FEEDBACK_SMTP_HOST", "MUSIC_FEEDBACK_SMTP_PORT", "MUSIC_FEEDBACK_SMTP_USER",
             "MUSIC_FEEDBACK_SMTP_PASSWORD", "MUSIC_FEEDBACK_SMTP_STARTTLS")
# The warehouse has no contact details; a real deployment points this at its mail alias domain.
DEFAULT_ADDRESS = "listener-{listener_id}@listeners.music-feedback.example"


LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


def public_url() -> str:
    """The service's address in messages. HTTPS, or plain HTTP on a loopback host only: the links carry
    tokens, and one-click unsubscribe (List-Unsubscribe) must be HTTPS for mailbox providers."""
    url = os.environ.get(PUBLIC_URL_VAR, "http://127.0.0.1:8080").rstrip("/")
    try:
        parts = urlsplit(url)
        host, _ = parts.hostname, parts.port  # .port raises ValueError on a port that is not a number
    except ValueError:
        parts, host = None, None
    if parts is None or parts.scheme not in ("http", "https") or not host:
        raise ValueError(f"{PUBLIC_URL_VAR}={url!r} must be an https:// URL with a host, e.g. "
                         "https://feedback.example.com")
    if parts.scheme == "http" and host not in LOOPBACK_HOSTS:
        raise ValueError(f"{PUBLIC_URL_VAR}={url!r} must use https:// (plain http:// is allowed only on "
                         f"{', '.join(LOOPBACK_HOSTS)}): its links carry tokens, and mailbox providers expect "
                         "one-click unsubscribe over HTTPS")
    return url


def address_template() -> str:
    template = os.environ.get(ADDRESS_VAR, DEFAULT_ADDRESS)
    if "{listener_id}" not in template or "@" not in template:
        raise ValueError(f"{ADDRESS_VAR} must be an address containing {{listener_id}}, e.g. {DEFAULT_ADDRESS}")
    return template


def email_sender() -> EmailSender:
    """SES v2 when MUSIC_FEEDBACK_EMAIL_SERVICE=ses; SMTP when MUSIC_FEEDBACK_SMTP_HOST is set; else the local
    Maildir outbox."""
    service = os.environ.get(EMAIL_SERVICE_VAR, "").strip().lower()
    if service == "ses":
        # lazy: ses imports boto3 (~0.26 s); every local command (`why`) picks its sender here
        from music_feedback.delivery.email.ses import SESv2Sender
        return SESv2Sender.from_env()
    if service not in ("", "smtp", "maildir"):
        raise ValueError(f"{EMAIL_SERVICE_VAR}={service!r} is not supported: use maildir, smtp or ses")
    host = os.environ.get("MUSIC_FEEDBACK_SMTP_HOST")
    if host:
        port = os.environ.get("MUSIC_FEEDBACK_SMTP_PORT", "25")
        if not port.isdigit():
            raise ValueError(f"MUSIC_FEEDBACK_SMTP_PORT must be a port number, got {port!r}")
        return SMTPSender(host=host, port=int(port), username=os.environ.get("MUSIC_FEEDBACK_SMTP_USER"),
                          password=os.environ.get("MUSIC_FEEDBACK_SMTP_PASSWORD"),
                          starttls=os.environ.get("MUSIC_FEEDBACK_SMTP_STARTTLS", "").lower() in ("1", "true", "yes"))
    if service == "smtp":
        raise ValueError(f"{EMAIL_SERVICE_VAR}=smtp needs MUSIC_FEEDBACK_SMTP_HOST")
    return MaildirSender(path=str(settings.outbox_dir()))
