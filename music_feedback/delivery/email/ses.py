"""The AWS email service: SES v2 SendBulkEmail, 50 destinations a call.

Messages are rendered by our own templates, so each call carries an inline template whose three parts are
raw placeholders (`{{{subject}}}`: Handlebars' triple braces do not HTML-escape, and the HTML part is
already escaped by Jinja2) and each entry carries its rendered parts as replacement data, with its own
List-Unsubscribe headers. Per-entry results decide: SUCCESS is sent; throttled and transient entries go
again (only those) with exponential backoff and full jitter; the rest failed, with SES's words. Whole
calls that are throttled or hit a 5xx are retried by botocore's standard mode. A token bucket keeps the
send rate under the account's MaxSendRate across threads.
"""
from __future__ import annotations

import json
import os
import random
import re
import threading
import time
from typing import Optional

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
from pydantic import PrivateAttr

from music_feedback.delivery.email.port import EmailMessage, EmailSender, SendResult

RETRYABLE = {"ACCOUNT_THROTTLED", "TRANSIENT_FAILURE", "FAILED", "ACCOUNT_SENDING_PAUSED",
             "CONFIGURATION_SET_SENDING_PAUSED", "ACCOUNT_DAILY_QUOTA_EXCEEDED"}
TEMPLATE = {"Subject": "{{{subject}}}", "Html": "{{{html}}}", "Text": "{{{text}}}"}
CONFIG_SET_VAR = "MUSIC_FEEDBACK_SES_CONFIGURATION_SET"


class SESConfigError(RuntimeError):
    """SES cannot be used as configured; the message names the setting."""


class TokenBucket:
    def __init__(self, rate: float):
        self.rate, self.tokens, self.stamp = rate, rate, time.monotonic()
        self.lock = threading.Lock()

    def take(self, n: int) -> None:
        while True:
            with self.lock:
                now = time.monotonic()
                self.tokens = min(self.rate, self.tokens + (now - self.stamp) * self.rate)
                self.stamp = now
                if self.tokens >= n or (n > self.rate and self.tokens >= self.rate):
                    self.tokens -= n
                    return
                wait = (min(n, self.rate) - self.tokens) / self.rate
            time.sleep(wait)


class SESv2Sender(EmailSender):
    region: str = "us-east-1"
    endpoint_url: Optional[str] = None
    configuration_set: Optional[str] = None  # records open and click events
    max_send_rate: Optional[float] = None  # messages/s; None: the account's MaxSendRate
    max_attempts: int = 5
    base_delay_s: float = 0.2
    _client = PrivateAttr(default=None)
    _bucket = PrivateAttr(default=None)
    _lock = PrivateAttr(default_factory=threading.Lock)

    @property
    def batch_size(self) -> int:
        return 50

    @classmethod
    def from_env(cls) -> "SESv2Sender":
        region = (os.environ.get("MUSIC_FEEDBACK_SES_REGION") or os.environ.get("AWS_REGION")
                  or os.environ.get("AWS_DEFAULT_REGION"))
        if not region:
            raise SESConfigError("SES v2: no region: set MUSIC_FEEDBACK_SES_REGION (or AWS_REGION)")
        rate = os.environ.get("MUSIC_FEEDBACK_SES_MAX_SEND_RATE")
        try:
            rate_value = float(rate) if rate else None
        except ValueError:
            raise SESConfigError(f"MUSIC_FEEDBACK_SES_MAX_SEND_RATE must be a number, got {rate!r}") from None
        return cls(region=region, endpoint_url=os.environ.get("MUSIC_FEEDBACK_SES_ENDPOINT"),
                   configuration_set=os.environ.get(CONFIG_SET_VAR), max_send_rate=rate_value)

    def client(self):
        if self._client is None:
            import boto3
            config = Config(retries={"mode": "standard", "total_max_attempts": self.max_attempts},
                            connect_timeout=5, read_timeout=30)
            # A session of its own: the default one caches credentials and is not safe across threads.
            self._client = boto3.session.Session().client("sesv2", region_name=self.region,
                                                          endpoint_url=self.endpoint_url, config=config)
        return self._client

    def _call(self, name: str, **kw):
        try:
            return getattr(self.client(), name)(**kw)
        except NoCredentialsError:
            raise SESConfigError("SES v2: no AWS credentials found (the standard chain: environment, profile, "
                                 "instance role)") from None
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            text = exc.response.get("Error", {}).get("Message", "")
            if code == "NotFoundException" and self.configuration_set:
                raise SESConfigError(f"SES v2: configuration set {self.configuration_set!r} does not exist "
                                     f"({CONFIG_SET_VAR}): {text}") from None
            if code in ("AccessDeniedException", "UnrecognizedClientException", "InvalidClientTokenId",
                        "SignatureDoesNotMatch"):
                raise SESConfigError(f"SES v2 refused the credentials ({code}): {text}") from None
            raise
        except BotoCoreError as exc:
            raise SESConfigError(f"SES v2 at {self.endpoint_url or self.region} cannot be reached: {exc} (check "
                                 "MUSIC_FEEDBACK_SES_REGION and MUSIC_FEEDBACK_SES_ENDPOINT)") from None

    def _ready(self) -> TokenBucket:
        """Once: the account answers (credentials, region), the configuration set exists, the rate is known."""
        with self._lock:
            if self._bucket is None:
                account = self._call("get_account")
                if self.configuration_set:
                    self._call("get_configuration_set", ConfigurationSetName=self.configuration_set)
                rate = self.max_send_rate or float(account.get("SendQuota", {}).get("MaxSendRate") or 14.0)
                self._bucket = TokenBucket(rate)
            return self._bucket

    def send(self, messages: list[EmailMessage]) -> list[SendResult]:
        bucket = self._ready()
        results: dict[str, SendResult] = {}
        pending = list(messages)
        for attempt in range(self.max_attempts):
            bucket.take(len(pending))
            retry = []
            for message, entry in zip(pending, self._bulk(pending)):
                status, error = entry.get("Status", "FAILED"), entry.get("Error", "")
                if status == "SUCCESS":
                    results[message.message_id] = SendResult(message.message_id, "sent")
                elif status in RETRYABLE:
                    retry.append(message)
                    results[message.message_id] = SendResult(message.message_id, "retry", f"SES {status}: {error}")
                else:
                    results[message.message_id] = SendResult(message.message_id, "failed", f"SES {status}: {error}")
            if not retry:
                break
            pending = retry
            time.sleep(random.uniform(0, self.base_delay_s * 2 ** attempt))  # full jitter
        return [results[m.message_id] for m in messages]

    def _bulk(self, messages: list[EmailMessage]) -> list[dict]:
        sender = messages[0].sender
        kw = {"FromEmailAddress": sender,
              "DefaultContent": {"Template": {"TemplateContent": TEMPLATE, "TemplateData": "{}"}},
              "BulkEmailEntries": [{
                  "Destination": {"ToAddresses": [m.to]},
                  "ReplacementEmailContent": {"ReplacementTemplate": {"ReplacementTemplateData": json.dumps(
                      {"subject": m.subject, "html": m.html, "text": m.text})}},
                  "ReplacementHeaders": [{"Name": k, "Value": v} for k, v in m.headers.items()],
                  "ReplacementTags": [{"Name": "campaign", "Value": re.sub(r"[^A-Za-z0-9_-]", "_", m.campaign)}],
              } for m in messages]}
        if self.configuration_set:
            kw["ConfigurationSetName"] = self.configuration_set
        return self._call("send_bulk_email", **kw)["BulkEmailEntryResults"]

    def describe(self) -> str:
        return f"SES v2 {self.endpoint_url or self.region}" + (
            f" (configuration set {self.configuration_set})" if self.configuration_set else "")
