"""The AWS email service: SES v2 SendBulkEmail, 50 destinations a call.

Our own Jinja2 templates render every message, so each call carries an inline template of three bare
placeholders and each entry its rendered parts as replacement data. Inline templates allow simple
`{{name}}` substitution only (block helpers are refused as "unsupported operations"), and SES does not
HTML-escape what it substitutes ("SES doesn't escape HTML content when rendering", SES guide, advanced
personalization): `{{html}}` arrives as our HTML and `{{subject}}`/`{{text}}` keep their `&` and `<`.
Each entry carries its own headers (ReplacementHeaders) and a campaign tag for the event records.

Per-entry results decide: SUCCESS is sent; throttled and transient entries go again (only those) with
exponential backoff and full jitter; paused or over-quota accounts are left for a later retry at once;
the rest failed, with SES's words. A throttled or failing call is retried whole the same way.
"""
from __future__ import annotations

import json
import os
import random
import re
import threading
import time
from dataclasses import replace
from typing import Optional

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, ParamValidationError
from dagster import EnvVar
from pydantic import Field, PrivateAttr

from music_feedback.aws.settings import region_setting
from music_feedback.delivery.email.mime import _header_value
from music_feedback.delivery.email.port import EmailMessage, EmailSender, SendResult

TEMPLATE = {"Subject": "{{subject}}", "Html": "{{html}}", "Text": "{{text}}"}
AGAIN = {"ACCOUNT_THROTTLED", "TRANSIENT_FAILURE"}  # clears within seconds: retried in this call
# Not the message's fault, but not clearing within seconds either: `retry`, for a later round.
LATER = {"ACCOUNT_DAILY_QUOTA_EXCEEDED", "ACCOUNT_SENDING_PAUSED", "CONFIGURATION_SET_SENDING_PAUSED",
         "ACCOUNT_SUSPENDED"}
THROTTLE_CODES = {"TooManyRequestsException", "LimitExceededException", "ThrottlingException", "Throttling"}
LATER_CODES = {"SendingPausedException", "AccountSuspendedException"}
CREDENTIAL_CODES = {"AccessDeniedException", "AccessDenied", "UnrecognizedClientException",
                    "InvalidSignatureException", "SignatureDoesNotMatch", "ExpiredTokenException",
                    "MissingAuthenticationTokenException"}
REGION_VAR, ENDPOINT_VAR = "MUSIC_FEEDBACK_SES_REGION", "MUSIC_FEEDBACK_SES_ENDPOINT"
CONFIG_SET_VAR, RATE_VAR = "MUSIC_FEEDBACK_SES_CONFIGURATION_SET", "MUSIC_FEEDBACK_SES_MAX_SEND_RATE"
# SES replaces Message-ID with its own; ours travels here so events and replies map back to the ledger.
ID_HEADER = "X-Feedback-Message-ID"
MAX_HEADERS = 15  # BulkEmailEntry.ReplacementHeaders


class SESConfigError(RuntimeError):
    """SES cannot be used as configured; the message names the setting."""


class _Unavailable(Exception):
    """SES did not take the call after every attempt: the messages are worth another try later."""

    def __init__(self, reason: str, unreachable: bool):
        super().__init__(reason)
        self.unreachable = unreachable


class Pacer:
    """A thread-safe token bucket at `rate` messages/s that keeps no burst credit: a call of n messages
    goes when its last message's token has accrued, so all threads together never run ahead of the rate
    (SES tolerates short bursts, but a day's send is one long one)."""

    def __init__(self, rate: float):
        self.rate, self.next, self.lock = rate, 0.0, threading.Lock()

    def take(self, n: int) -> None:
        with self.lock:
            start = max(self.next, time.monotonic())
            self.next = start + n / self.rate
            due = start + (n - 1) / self.rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)


class SESv2Sender(EmailSender):
    region: str = Field(default="us-east-1", description=(
        'SES v2 region (MUSIC_FEEDBACK_SES_REGION, else AWS_REGION / AWS_DEFAULT_REGION).'))
    endpoint_url: Optional[str] = Field(default=None, description=(
        "SES endpoint; None: the region's (MUSIC_FEEDBACK_SES_ENDPOINT)."))
    configuration_set: Optional[str] = Field(default=None, description=(
        'SES configuration set that records open and click events (MUSIC_FEEDBACK_SES_CONFIGURATION_SET).'))
    from_address: Optional[str] = Field(default=None, description=(
        "Sender address of every message; None: each message's own sender."))
    max_send_rate: Optional[float] = Field(default=None, description=(
        "Messages a second, > 0; None: the account's SendQuota.MaxSendRate "
        '(MUSIC_FEEDBACK_SES_MAX_SEND_RATE).'))
    max_attempts: int = Field(default=5, description=(
        'Attempts in all per entry and per call, the first included.'))
    base_delay_s: float = Field(default=0.5, description=(
        'Backoff base in seconds: full jitter over base * 2**attempt.'))
    max_delay_s: float = Field(default=20.0, description='Backoff cap in seconds.')
    _client = PrivateAttr(default=None)
    _pacer = PrivateAttr(default=None)
    _lock = PrivateAttr(default_factory=threading.Lock)

    @property
    def batch_size(self) -> int:
        return 50

    @classmethod
    def from_env(cls, env_vars: bool = False) -> "SESv2Sender":
        """With `env_vars` (the Dagster set), the region is an `EnvVar` (MUSIC_FEEDBACK_SES_REGION when set,
        else the AWS region's) resolved at run launch; the send rate is checked here."""
        region = (os.environ.get(REGION_VAR) or os.environ.get("AWS_REGION")
                  or os.environ.get("AWS_DEFAULT_REGION"))
        if env_vars:
            region = EnvVar(REGION_VAR) if os.environ.get(REGION_VAR) else region_setting()
        if not region:
            raise SESConfigError(f"SES v2: no region: set {REGION_VAR} (or AWS_REGION)")
        rate = os.environ.get(RATE_VAR)
        try:
            rate_value = float(rate) if rate else None
        except ValueError:
            rate_value = -1.0
        if rate_value is not None and not rate_value > 0:
            raise SESConfigError(f"SES v2: {RATE_VAR} must be a positive number of messages a second, "
                                 f"got {rate!r}")
        return cls(region=region, endpoint_url=os.environ.get(ENDPOINT_VAR) or None,
                   configuration_set=os.environ.get(CONFIG_SET_VAR) or None, max_send_rate=rate_value)

    def client(self):
        if self._client is None:
            # Our own retries (below) see per-entry results too; botocore's would double the attempts.
            config = Config(retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=5,
                            read_timeout=30, max_pool_connections=16)
            try:
                # A session of its own: the default one is shared and not safe across threads.
                self._client = boto3.session.Session().client("sesv2", region_name=self.region,
                                                              endpoint_url=self.endpoint_url, config=config)
            except (ValueError, BotoCoreError) as exc:
                raise SESConfigError(f"SES v2: region {self.region!r} / endpoint {self.endpoint_url!r} cannot be "
                                     f"used ({exc}): check {REGION_VAR} and {ENDPOINT_VAR}") from None
        return self._client

    def _backoff(self, attempt: int) -> None:
        time.sleep(random.uniform(0, min(self.max_delay_s, self.base_delay_s * 2 ** attempt)))  # full jitter

    def _call(self, name: str, pace: int = 0, **kw) -> dict:
        """One API call, retried whole while throttled, 5xx or unreachable; a misconfiguration raises."""
        reason, unreachable = "", False
        for attempt in range(self.max_attempts):
            if attempt:
                self._backoff(attempt - 1)
            if pace:
                self._pacer.take(pace)
            try:
                return getattr(self.client(), name)(**kw)
            except NoCredentialsError:
                raise SESConfigError("SES v2: no AWS credentials found in the standard chain (environment "
                                     "variables, shared profile, instance or task role)") from None
            except ClientError as exc:
                err, status = exc.response.get("Error", {}), exc.response.get("ResponseMetadata", {})
                code, text = err.get("Code", ""), err.get("Message", "")
                if code in THROTTLE_CODES or status.get("HTTPStatusCode", 0) >= 500:
                    reason, unreachable = f"SES {code or status.get('HTTPStatusCode')}: {text}".strip(), False
                    continue
                self._refuse(code, text)
                raise
            except ParamValidationError:  # botocore's own check of what we built: no use repeating it
                raise
            except BotoCoreError as exc:
                reason, unreachable = f"SES v2 at {self.endpoint_url or self.region} not reachable: {exc}", True
        raise _Unavailable(f"{reason} (after {self.max_attempts} attempts)", unreachable)

    def _refuse(self, code: str, text: str) -> None:
        """Raise, naming the setting, for a call refused because of how SES is configured here."""
        if code in CREDENTIAL_CODES:
            raise SESConfigError(f"SES v2 refused the AWS credentials ({code}: {text}): the standard chain's "
                                 "identity needs ses:SendBulkEmail, ses:GetAccount and ses:GetConfigurationSet")
        config_set = self.configuration_set
        if config_set and (code == "NotFoundException" or "configuration set" in text.lower()):
            raise SESConfigError(f"SES v2: configuration set {config_set!r} does not exist ({CONFIG_SET_VAR}): "
                                 f"{code}: {text}")
        if code == "MailFromDomainNotVerifiedException":
            raise SESConfigError(f"SES v2: the sender is not a verified identity ({code}: {text}): verify it "
                                 "in SES or change the program's email from_address")

    def _ready(self) -> Pacer:
        """Once: credentials, region and configuration set are checked and the send rate is known."""
        with self._lock:
            if self._pacer is None:
                try:
                    account = self._call("get_account")
                    if self.configuration_set:
                        self._call("get_configuration_set", ConfigurationSetName=self.configuration_set)
                except _Unavailable as exc:
                    if exc.unreachable:  # at first contact: a wrong region or endpoint, not a blip
                        raise SESConfigError(f"{exc}: check {REGION_VAR} and {ENDPOINT_VAR}") from None
                    raise
                except ClientError as exc:
                    err = exc.response.get("Error", {})
                    raise SESConfigError(f"SES v2 refused the start-up check: {err.get('Code')}: "
                                         f"{err.get('Message')} (region {self.region!r}, {REGION_VAR})") from None
                rate = self.max_send_rate or float(account.get("SendQuota", {}).get("MaxSendRate") or 1.0)
                if rate <= 0:
                    raise SESConfigError(f"SES v2: max_send_rate must be positive, got {rate} ({RATE_VAR})")
                self._pacer = Pacer(rate)
            return self._pacer

    def send(self, messages: list[EmailMessage]) -> list[SendResult]:
        try:
            self._ready()
        except _Unavailable as exc:  # throttled before the first send: nothing went, all can go later
            return [SendResult(m.message_id, "retry", str(exc)) for m in messages]
        results: dict[str, SendResult] = {}
        groups: dict[str, list[EmailMessage]] = {}
        for m in messages:
            problem = _header_problem(m)
            if problem:
                results[m.message_id] = SendResult(m.message_id, "failed", problem)
            else:
                groups.setdefault(self.from_address or m.sender, []).append(m)
        try:
            for sender, group in groups.items():  # one call per sender: FromEmailAddress is per call
                for start in range(0, len(group), self.batch_size):
                    self._send_entries(sender, group[start:start + self.batch_size], results)
        except SESConfigError as exc:
            if not any(r.status == "sent" for r in results.values()):
                raise
            # Some went already: raising would drop their results, and a resumed run would send them twice.
            settled = {k: r for k, r in results.items() if r.status != "retry"}
            results = {m.message_id: SendResult(m.message_id, "retry", str(exc)) for m in messages} | settled
        return [results[m.message_id] for m in messages]

    def _send_entries(self, sender: str, pending: list[EmailMessage], results: dict[str, SendResult]) -> None:
        """Into `results`; throttled and transient entries again, alone, until none is left or attempts are."""
        for attempt in range(self.max_attempts):
            if attempt:
                self._backoff(attempt - 1)
            again = []
            for message, (status, reason, now) in zip(pending, self._bulk(sender, pending)):
                results[message.message_id] = SendResult(message.message_id, status, reason)
                if now:
                    again.append(message)
            if not again:
                return
            pending = again
        for m in pending:
            results[m.message_id] = replace(results[m.message_id], reason=f"{results[m.message_id].reason} "
                                                                        f"(after {self.max_attempts} attempts)")

    def _bulk(self, sender: str, messages: list[EmailMessage]) -> list[tuple[str, str, bool]]:
        """(status, reason, worth retrying in this call) per message for one SendBulkEmail call."""
        kw = {"FromEmailAddress": sender, "BulkEmailEntries": [_entry(m) for m in messages],
              "DefaultContent": {"Template": {"TemplateContent": TEMPLATE, "TemplateData": "{}"}}}
        if self.configuration_set:
            kw["ConfigurationSetName"] = self.configuration_set
        try:
            answer = self._call("send_bulk_email", pace=len(messages), **kw)["BulkEmailEntryResults"]
        except _Unavailable as exc:
            return [("retry", str(exc), False)] * len(messages)
        except ParamValidationError as exc:
            code, reason = "BadRequestException", f"refused before sending: {exc}"
        except ClientError as exc:
            err = exc.response.get("Error", {})
            code, reason = err.get("Code", ""), f"SES {err.get('Code', 'error')}: {err.get('Message', '')}"
        else:
            if len(answer) != len(messages):
                return [("retry", f"SES answered {len(answer)} results for {len(messages)} entries", False)] * len(
                    messages)
            return [_outcome(entry) for entry in answer]
        if code in LATER_CODES:
            return [("retry", reason, False)] * len(messages)
        if code in ("BadRequestException", "MessageRejected") and len(messages) > 1:  # find the one refused
            half = len(messages) // 2
            return self._bulk(sender, messages[:half]) + self._bulk(sender, messages[half:])
        return [("failed", reason, False)] * len(messages)

    def describe(self) -> str:
        return f"SES v2 {self.endpoint_url or self.region}" + (
            f" (configuration set {self.configuration_set})" if self.configuration_set else "")


def _outcome(entry: dict) -> tuple[str, str, bool]:
    status = entry.get("Status", "FAILED")
    if status == "SUCCESS":
        return "sent", "", False
    reason = f"SES {status}: {entry.get('Error', '')}".strip()
    return ("retry" if status in AGAIN | LATER else "failed"), reason, status in AGAIN


def _headers(message: EmailMessage) -> dict[str, str]:
    # Non-ASCII values become RFC 2047 words: SES takes printable ASCII only.
    return {**{k: _header_value(v) for k, v in message.headers.items()}, ID_HEADER: message.message_id}


def _header_problem(message: EmailMessage) -> str:
    """Why SES would refuse this message's headers (it would refuse the whole call), or ''."""
    headers = _headers(message)
    if len(headers) > MAX_HEADERS:
        return f"{len(headers)} headers, over the {MAX_HEADERS} SES takes"
    for name, value in headers.items():
        if not re.fullmatch(r"[!-9;-~]{1,126}", name) or not re.fullmatch(r"[ -~]{1,995}", value) \
                or len(name) + len(value) > 996:
            return f"header {name!r} is not one SES takes (printable ASCII, name ≤ 126, value ≤ 995 characters)"
    return ""


def _entry(message: EmailMessage) -> dict:
    data = json.dumps({"subject": message.subject, "html": message.html, "text": message.text})
    return {"Destination": {"ToAddresses": [message.to]},
            "ReplacementEmailContent": {"ReplacementTemplate": {"ReplacementTemplateData": data}},
            "ReplacementHeaders": [{"Name": k, "Value": v} for k, v in _headers(message).items()],
            # Tag values: letters, digits, _ and - only.
            "ReplacementTags": [{"Name": "campaign", "Value": re.sub(r"[^A-Za-z0-9_-]", "_", message.campaign)
                                 or "none"}]}
