"""The AWS email service: SES v2 SendBulkEmail, 50 destinations a call.

Our own Jinja2 templates render every message, so each call carries an inline template of three bare
placeholders and each entry its rendered parts as replacement data. Inline templates allow simple
`{{name}}` substitution only (block helpers are refused as "unsupported operations"), and SES does not
HTML-escape what it substitutes ("SES doesn't escape HTML content when rendering", SES guide, advanced
personalization): `{{html}}` arrives as our HTML and `{{subject}}`/`{{text}}` keep their `&` and `<`.
Each entry carries its own headers (ReplacementHeaders) and a campaign tag for the event records.

Per-entry results decide: SUCCESS is sent; throttled and transient entries go again (only those) with
exponential backoff and full jitter; paused or over-quota accounts are left for a later retry at once;
the rest failed, with SES's words.

Each message at most once: SendBulkEmail is never sent again after a failure that does not prove SES left
it alone. botocore's retry handler (standard mode, this client's own checker) retries the call only when
SES answered throttling (429 / a throttling code: refused before anything was accepted) or the connection
was never made (EndpointConnectionError, ConnectTimeoutError, ProxyConnectionError); a read timeout, a
dropped connection or a 5xx after the request went makes every entry of the call `unknown`. The ledger
keeps those, and `events` reads SES's delivery events (the configuration set's event destination, SNS or
EventBridge, into an SQS queue) to settle them: a Send event is proof SES took the message.
"""
from __future__ import annotations

import json
import os
import random
import re
import threading
import time
from dataclasses import replace
from datetime import datetime
from typing import Optional

import boto3
from botocore.config import Config
from botocore.exceptions import (BotoCoreError, ClientError, ConnectTimeoutError, EndpointConnectionError,
                                 NoCredentialsError, ParamValidationError, ProxyConnectionError)
from botocore.retries import quota, standard
from botocore.retries.base import BaseRetryableChecker, BaseRetryBackoff
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
QUEUE_VAR = "MUSIC_FEEDBACK_SES_EVENTS_QUEUE"  # the SQS queue URL the configuration set's events reach
# The request never left: nothing can have been accepted (a read timeout or a dropped connection can).
NEVER_SENT = (EndpointConnectionError, ConnectTimeoutError, ProxyConnectionError)
# Events that prove SES took the message, and those that say it took it and then refused it.
TAKEN_EVENTS = {"Send", "Delivery", "Bounce", "Complaint", "DeliveryDelay", "Open", "Click", "Subscription"}
REFUSED_EVENTS = {"Reject", "Rendering Failure", "RenderingFailure"}
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


class _Ambiguous(Exception):
    """SES may have taken the call (read timeout, dropped connection, 5xx after sending): never resend it."""


class _SendBulkRetries(BaseRetryableChecker):
    """botocore's standard conditions for every call but SendBulkEmail, which is retried only when SES
    answered throttling or the connection was never made: nothing of it can have been accepted."""

    def __init__(self, max_attempts: int):
        self._standard = standard.StandardRetryConditions(max_attempts)
        self._attempts = standard.MaxAttemptsChecker(max_attempts)
        self._throttled = standard.OrRetryChecker([standard.ThrottledRetryableChecker(),
                                                   standard.ThrottlingStatusCodeChecker()])

    def is_retryable(self, context) -> bool:
        if context.operation_model is None or context.operation_model.name != "SendBulkEmail":
            return self._standard.is_retryable(context)
        if not self._attempts.is_retryable(context):
            return False
        if context.caught_exception is not None:
            return isinstance(context.caught_exception, NEVER_SENT)
        return context.http_response is not None and self._throttled.is_retryable(context)


class _FullJitter(BaseRetryBackoff):
    def __init__(self, base: float, cap: float):
        self.base, self.cap = base, cap

    def delay_amount(self, context) -> float:
        return random.uniform(0, min(self.cap, self.base * 2 ** max(context.attempt_number - 1, 0)))


def _own_retries(client, checker: BaseRetryableChecker, backoff: BaseRetryBackoff) -> None:
    """Replace the client's standard retry handler with one of botocore's own RetryHandler, on `checker`."""
    name = client.meta.service_model.service_id.hyphenize()
    client.meta.events.unregister(f"needs-retry.{name}", unique_id=f"retry-config-{name}")
    adapter = standard.RetryEventAdapter()
    retry_quota = standard.RetryQuotaChecker(quota.RetryQuota(), standard.ThrottlingErrorDetector(adapter))
    handler = standard.RetryHandler(standard.RetryPolicy(checker, backoff), adapter, retry_quota, name)
    client.meta.events.register(f"needs-retry.{name}", handler.needs_retry, unique_id=f"retry-config-{name}")
    client.meta.events.register(f"after-call.{name}", retry_quota.release_retry_quota,
                                unique_id=f"retry-quota-{name}")


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
    read_timeout_s: float = Field(default=30.0, description=(
        "Seconds to wait for SES's answer; past it the call's messages are `unknown`, never sent again blindly."))
    events_queue_url: Optional[str] = Field(default=None, description=(
        "SQS queue that receives the configuration set's Send/Reject/Delivery/Bounce events (through SNS or "
        "EventBridge); None: unknown sends stay unknown (MUSIC_FEEDBACK_SES_EVENTS_QUEUE)."))
    events_endpoint_url: Optional[str] = Field(default=None, description=(
        "SQS endpoint; None: boto3's own (AWS_ENDPOINT_URL_SQS, else the region's)."))
    event_hold_s: float = Field(default=900.0, description=(
        "An event no request of this reader matches is left in the queue this long (another program's "
        "reader, or a send still in flight, may want it), then deleted."))
    _client = PrivateAttr(default=None)
    _sqs = PrivateAttr(default=None)
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
                   configuration_set=os.environ.get(CONFIG_SET_VAR) or None, max_send_rate=rate_value,
                   events_queue_url=os.environ.get(QUEUE_VAR) or None)

    def client(self):
        if self._client is None:
            # botocore retries whole calls (see _SendBulkRetries); ours (below) retry per-entry results only.
            config = Config(retries={"mode": "standard", "total_max_attempts": self.max_attempts}, connect_timeout=5,
                            read_timeout=self.read_timeout_s, max_pool_connections=16)
            try:
                # A session of its own: the default one is shared and not safe across threads.
                client = boto3.session.Session().client("sesv2", region_name=self.region,
                                                        endpoint_url=self.endpoint_url, config=config)
                _own_retries(client, _SendBulkRetries(self.max_attempts),
                             _FullJitter(self.base_delay_s, self.max_delay_s))
                self._client = client
            except (ValueError, BotoCoreError) as exc:
                raise SESConfigError(f"SES v2: region {self.region!r} / endpoint {self.endpoint_url!r} cannot be "
                                     f"used ({exc}): check {REGION_VAR} and {ENDPOINT_VAR}") from None
        return self._client

    def _backoff(self, attempt: int) -> None:
        time.sleep(random.uniform(0, min(self.max_delay_s, self.base_delay_s * 2 ** attempt)))  # full jitter

    def _call(self, name: str, pace: int = 0, **kw) -> dict:
        """One API call; botocore retries it as far as is safe (see _SendBulkRetries). Throttled, 5xx or
        unreachable: _Unavailable (nothing taken), or _Ambiguous for a send SES may have taken; a
        misconfiguration raises SESConfigError."""
        if pace:
            self._pacer.take(pace)
        try:
            return getattr(self.client(), name)(**kw)
        except NoCredentialsError:
            raise SESConfigError("SES v2: no AWS credentials found in the standard chain (environment "
                                 "variables, shared profile, instance or task role)") from None
        except ClientError as exc:
            err, status = exc.response.get("Error", {}), exc.response.get("ResponseMetadata", {})
            code, text, http = err.get("Code", ""), err.get("Message", ""), status.get("HTTPStatusCode", 0)
            reason = f"SES {code or http}: {text}".strip()
            attempts = f" (after {status.get('RetryAttempts', 0) + 1} attempts)"
            if code in THROTTLE_CODES or http == 429:
                raise _Unavailable(reason + attempts, False) from None
            if http >= 500:
                if name == "send_bulk_email":
                    raise _Ambiguous(f"{reason}: SES may have taken some of the call") from None
                raise _Unavailable(reason + attempts, False) from None
            self._refuse(code, text)
            raise
        except ParamValidationError:  # botocore's own check of what we built: no use repeating it
            raise
        except NEVER_SENT as exc:
            raise _Unavailable(f"SES v2 at {self.endpoint_url or self.region} not reachable: {exc}", True) from None
        except BotoCoreError as exc:
            if name == "send_bulk_email":
                raise _Ambiguous(f"SES v2 at {self.endpoint_url or self.region}: {exc}: SES may have taken the "
                                 "call") from None
            raise _Unavailable(f"SES v2 at {self.endpoint_url or self.region} not reachable: {exc}", True) from None

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
            if not any(r.status in ("sent", "unknown") for r in results.values()):
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
        except _Ambiguous as exc:
            return [("unknown", str(exc), False)] * len(messages)
        except ParamValidationError as exc:
            code, reason = "BadRequestException", f"refused before sending: {exc}"
        except ClientError as exc:
            err = exc.response.get("Error", {})
            code, reason = err.get("Code", ""), f"SES {err.get('Code', 'error')}: {err.get('Message', '')}"
        else:
            if len(answer) != len(messages):
                return [("unknown", f"SES answered {len(answer)} results for {len(messages)} entries", False)] * len(
                    messages)
            return [_outcome(entry) for entry in answer]
        if code in LATER_CODES:
            return [("retry", reason, False)] * len(messages)
        if code in ("BadRequestException", "MessageRejected") and len(messages) > 1:  # find the one refused
            half = len(messages) // 2
            return self._bulk(sender, messages[:half]) + self._bulk(sender, messages[half:])
        return [("failed", reason, False)] * len(messages)

    # --- SES's delivery events -------------------------------------------------------------------
    def reports_events(self) -> bool:
        return bool(self.events_queue_url)

    def sqs(self):
        if self._sqs is None:
            with self._lock:
                if self._sqs is None:
                    config = Config(retries={"mode": "standard", "total_max_attempts": 5}, connect_timeout=5,
                                    read_timeout=30)
                    self._sqs = boto3.session.Session().client("sqs", region_name=self.region,
                                                               endpoint_url=self.events_endpoint_url, config=config)
        return self._sqs

    def events(self, message_ids, wait_for=(), wait_s: float = 0.0):
        """Drain the events queue: events of `message_ids` are returned and deleted; an event of none of them
        is left for `event_hold_s` (another reader may want it), then deleted; what is not an SES event is
        deleted. Receiving goes on until the queue answers empty and every `wait_for` has an event, or
        `wait_s` has passed."""
        if not self.events_queue_url:
            return None
        known, wanted = set(message_ids), set(wait_for)
        found: dict[str, tuple[str, str]] = {}
        deadline = time.monotonic() + wait_s
        try:
            while True:
                waiting = not wanted <= found.keys() and time.monotonic() < deadline
                got = self.sqs().receive_message(QueueUrl=self.events_queue_url, MaxNumberOfMessages=10,
                                                 WaitTimeSeconds=1 if waiting else 0).get("Messages", [])
                if not got and not waiting:
                    return found
                done = []
                for m in got:
                    event = _ses_event(m.get("Body", ""))
                    mid = event and event["message_id"]
                    if mid in known:
                        if event["type"] in TAKEN_EVENTS | REFUSED_EVENTS:
                            found[mid] = _merge(found.get(mid), event)
                    elif event is not None and time.time() - event["at"] < self.event_hold_s:
                        continue  # not ours, or not yet: visible again after the queue's visibility timeout
                    done.append(m["ReceiptHandle"])
                if done:
                    self.sqs().delete_message_batch(QueueUrl=self.events_queue_url, Entries=[
                        {"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(done)])
        except (ClientError, BotoCoreError) as exc:
            raise SESConfigError(f"SES events queue {self.events_queue_url} ({QUEUE_VAR}) cannot be read: "
                                 f"{exc}") from None

    def describe(self) -> str:
        return f"SES v2 {self.endpoint_url or self.region}" + (
            f" (configuration set {self.configuration_set})" if self.configuration_set else "")


def _outcome(entry: dict) -> tuple[str, str, bool]:
    status = entry.get("Status", "FAILED")
    if status == "SUCCESS":
        return "sent", "", False
    reason = f"SES {status}: {entry.get('Error', '')}".strip()
    return ("retry" if status in AGAIN | LATER else "failed"), reason, status in AGAIN


def _ses_event(body: str) -> dict | None:
    """An SES event from an SQS body: SNS's envelope (`Message`), EventBridge's (`detail`) or the event
    itself -> {message_id (ours, from ID_HEADER), type, at (epoch s), reason}, or None."""
    try:
        doc = json.loads(body)
        if isinstance(doc, dict) and isinstance(doc.get("Message"), str):
            doc = json.loads(doc["Message"])
        if isinstance(doc, dict) and isinstance(doc.get("detail"), dict):
            doc = doc["detail"]
    except (json.JSONDecodeError, TypeError):
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("mail"), dict):
        return None
    kind = doc.get("eventType") or doc.get("notificationType") or ""
    mail = doc["mail"]
    ours = next((h.get("value") for h in mail.get("headers") or [] if str(h.get("name", "")).lower()
                 == ID_HEADER.lower()), None)
    try:
        at = datetime.fromisoformat(str(mail.get("timestamp", "")).replace("Z", "+00:00")).timestamp()
    except ValueError:
        at = 0.0
    detail = doc.get("reject") or doc.get("failure") or {}
    reason = f"SES {kind} event: {detail.get('reason') or detail.get('errorMessage') or ''}".strip(": ")
    return {"message_id": ours, "type": kind, "at": at, "reason": reason}


def _merge(seen: tuple[str, str] | None, event: dict) -> tuple[str, str]:
    """A refusal (Reject, Rendering Failure) outweighs the Send event that comes with it."""
    if event["type"] in REFUSED_EVENTS:
        return "failed", event["reason"]
    return seen or ("sent", "")


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
