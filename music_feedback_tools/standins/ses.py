"""A small SES v2 stand-in (moto has no SendBulkEmail): the REST-JSON calls the sender makes, on a free
loopback port, with injectable faults.

It checks requests the way SES does (1-50 entries, a sender, simple-substitution inline templates,
headers SES takes), renders each entry as SES does (placeholders substituted as they are, no HTML
escaping; replacement data merged key by key over the default data) and records what it accepted.
Errors carry `x-amzn-ErrorType`, which botocore's rest-json parser reads as the error code, so the real
client raises the modelled exception.

Ambiguous failures happen for real: `timeout_after_accept` calls accept every entry and then answer only
after `stall_s` (past the client's read timeout), `error_after_accept` calls accept the first
`accepted_before_error` entries and then answer 500. Faults are set at start (`running(**faults)`) or
changed while it runs (POST /_standin/faults with a JSON object of Faults fields). With `events_topic_arn`
each accepted message publishes its SES Send event (the event publishing JSON, with the message's
headers) to that SNS topic at `events_endpoint`, as a configuration set's SNS event destination does.
"""
from __future__ import annotations

import json
import os
import re
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

PLACEHOLDER = re.compile(r"\{\{\{\s*([A-Za-z0-9]+)\s*\}\}\}|\{\{\s*([A-Za-z0-9]+)\s*\}\}")
HANDLEBARS = re.compile(r"\{\{.*?\}\}\}?", re.S)


@dataclass
class Faults:
    throttled: dict[str, int] = field(default_factory=dict)  # address -> attempts answered ACCOUNT_THROTTLED
    transient: dict[str, int] = field(default_factory=dict)  # address -> attempts answered TRANSIENT_FAILURE
    rejected: set[str] = field(default_factory=set)  # always answered MESSAGE_REJECTED
    statuses: dict[str, str] = field(default_factory=dict)  # address -> another status, always answered
    malformed: set[str] = field(default_factory=set)  # an entry to these makes SES refuse the whole call (400)
    throttle_calls: int = 0  # the first calls answered 429 TooManyRequestsException
    server_errors: int = 0  # then the next calls answered 500
    access_denied: bool = False  # every call answered 403 AccessDeniedException
    configuration_sets: set[str] = field(default_factory=lambda: {"feedback-events"})
    sets_deleted_after: int | None = None  # calls after which every configuration set is deleted
    timeout_after_accept: int = 0  # the next calls accept every entry, then answer after stall_s
    stall_s: float = 3.0
    error_after_accept: int = 0  # the next calls accept `accepted_before_error` entries, then answer 500
    accepted_before_error: int = 1
    events_topic_arn: str | None = None  # SNS topic that receives a Send event per accepted message
    events_endpoint: str | None = None  # where that topic lives (moto's server in the tests)
    max_send_rate: float = 1000.0
    inbox: str | None = None  # a Maildir folder that receives each accepted message, as a recipient would


@dataclass
class State:
    faults: Faults
    accepted: list[dict] = field(default_factory=list)  # one per entry SES would deliver
    calls: list[dict] = field(default_factory=list)  # one per SendBulkEmail request: at, entries, status
    lock: threading.Lock = field(default_factory=threading.Lock)
    sns: object = None


def _publish_event(state: State, msg: dict, ses_id: str) -> None:
    """The Send event SES's event publishing writes for an accepted message, to the SNS topic."""
    f = state.faults
    if not f.events_topic_arn:
        return
    import boto3  # lazy: only a stand-in with an event destination talks to SNS
    with state.lock:
        if state.sns is None:
            state.sns = boto3.session.Session().client("sns", region_name="us-east-1",
                                                       endpoint_url=f.events_endpoint)
    at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + ".000Z"
    tags = {k: [v] for k, v in msg["tags"].items()}
    if msg["configuration_set"]:
        tags["ses:configuration-set"] = [msg["configuration_set"]]
    event = {"eventType": "Send", "send": {}, "mail": {
        "timestamp": at, "source": msg["from"], "sendingAccountId": "123456789012", "messageId": ses_id,
        "destination": [msg["to"]], "headersTruncated": False,
        "headers": [{"name": k, "value": v} for k, v in msg["headers"].items()],
        "commonHeaders": {"from": [msg["from"]], "to": [msg["to"]], "subject": msg["subject"]}, "tags": tags}}
    state.sns.publish(TopicArn=f.events_topic_arn, Message=json.dumps(event))


class Refused(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code = status, code


def _render(template: str, data: dict) -> str:
    return PLACEHOLDER.sub(lambda m: str(data.get(m.group(1) or m.group(2), "")), template)


def _check_template(content: dict) -> None:
    """Inline templates take simple substitution only; SES refuses the rest (and snake_case names)."""
    for part in ("Subject", "Html", "Text"):
        for token in HANDLEBARS.findall(content.get(part) or ""):
            if not PLACEHOLDER.fullmatch(token):
                raise Refused(400, "BadRequestException", "Template contains unsupported operations.")
    if not content.get("Subject") or not (content.get("Html") or content.get("Text")):
        raise Refused(400, "BadRequestException", "Template needs a subject and a body.")


def _check_headers(headers: list[dict]) -> dict[str, str]:
    if len(headers) > 15:
        raise Refused(400, "BadRequestException", "At most 15 headers per entry.")
    for h in headers:
        if not re.fullmatch(r"[!-9;-~]{1,126}", h.get("Name", "")) or not re.fullmatch(r"[ -~]{1,995}",
                                                                                     h.get("Value", "")):
            raise Refused(400, "BadRequestException", f"Invalid header {h.get('Name')!r}.")
    return {h["Name"]: h["Value"] for h in headers}


def _bulk(state: State, body: dict) -> dict:
    f = state.faults
    with state.lock:
        if f.throttle_calls > 0:
            f.throttle_calls -= 1
            raise Refused(429, "TooManyRequestsException", "Maximum sending rate exceeded.")
        if f.server_errors > 0:
            f.server_errors -= 1
            raise Refused(500, "InternalFailure", "An internal error occurred.")
    entries = body.get("BulkEmailEntries") or []
    if not body.get("FromEmailAddress"):
        raise Refused(400, "BadRequestException", "FromEmailAddress is required for SendBulkEmail.")
    if not 1 <= len(entries) <= 50:
        raise Refused(400, "BadRequestException", f"{len(entries)} BulkEmailEntries: between 1 and 50 are allowed.")
    config_set = body.get("ConfigurationSetName")
    with state.lock:
        if f.sets_deleted_after is not None and sum(c["status"] == 200 for c in state.calls) > f.sets_deleted_after:
            f.configuration_sets = set()
    if config_set and config_set not in f.configuration_sets:
        raise Refused(404, "NotFoundException", f"Configuration set <{config_set}> does not exist.")
    template = (body.get("DefaultContent") or {}).get("Template") or {}
    content = template.get("TemplateContent") or {}
    _check_template(content)
    try:
        default = json.loads(template.get("TemplateData") or "{}")
        replacements = [json.loads(e.get("ReplacementEmailContent", {}).get("ReplacementTemplate", {})
                                   .get("ReplacementTemplateData") or "{}") for e in entries]
    except json.JSONDecodeError:
        raise Refused(400, "BadRequestException", "The template data is invalid.") from None
    headers = [_check_headers(e.get("ReplacementHeaders") or []) for e in entries]
    bad = f.malformed & {a for e in entries for a in (e.get("Destination") or {}).get("ToAddresses") or []}
    if bad:
        raise Refused(400, "BadRequestException", f"Invalid destination address {sorted(bad)[0]}.")
    with state.lock:
        stall = f.timeout_after_accept > 0
        f.timeout_after_accept -= stall
        partial = not stall and f.error_after_accept > 0
        f.error_after_accept -= partial
    results = []
    for n, (entry, data, head) in enumerate(zip(entries, replacements, headers)):
        if partial and n >= f.accepted_before_error:
            raise Refused(500, "InternalFailure", "An internal error occurred.")
        to = (entry.get("Destination") or {}).get("ToAddresses") or []
        results.append(_entry(state, body, config_set, to, content, {**default, **data}, head,
                              {t["Name"]: t["Value"] for t in entry.get("ReplacementTags") or []}))
    if partial:
        raise Refused(500, "InternalFailure", "An internal error occurred.")
    if stall:
        time.sleep(f.stall_s)  # everything accepted; the answer comes after the client stopped waiting
    return {"BulkEmailEntryResults": results}


def _entry(state: State, body: dict, config_set, to: list[str], content: dict, data: dict, headers: dict,
           tags: dict) -> dict:
    f = state.faults
    with state.lock:
        address = to[0] if to else ""
        for status, counts in (("ACCOUNT_THROTTLED", f.throttled), ("TRANSIENT_FAILURE", f.transient)):
            if counts.get(address, 0) > 0:
                counts[address] -= 1
                return {"Status": status, "Error": "Please try again."}
        if not address:
            return {"Status": "INVALID_PARAMETER", "Error": "Missing destination."}
        if address in f.rejected:
            return {"Status": "MESSAGE_REJECTED", "Error": "Email address is on the suppression list."}
        if address in f.statuses:
            return {"Status": f.statuses[address], "Error": f"{f.statuses[address].lower().replace('_', ' ')}."}
        accepted = {
            "from": body["FromEmailAddress"], "to": address, "configuration_set": config_set,
            "subject": _render(content["Subject"], data), "html": _render(content.get("Html") or "", data),
            "text": _render(content.get("Text") or "", data), "headers": headers, "tags": tags}
        state.accepted.append(accepted)
    if f.inbox:
        _deliver(Path(f.inbox), accepted)
    ses_id = str(uuid.uuid4())
    _publish_event(state, accepted, ses_id)
    return {"Status": "SUCCESS", "MessageId": ses_id}


def _deliver(inbox: Path, msg: dict) -> None:
    """Write the message the recipient gets into a Maildir, named as the project's own outbox names it,
    so the simulated listeners read SES's deliveries exactly as they read the embedded outbox's."""
    from email.message import EmailMessage

    from music_feedback.delivery.email.maildir import file_name
    from music_feedback.delivery.email.ses import ID_HEADER
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = msg["from"], msg["to"], msg["subject"]
    for name, value in msg["headers"].items():
        mail[name] = value
    mail.set_content(msg["text"], cte="quoted-printable")
    mail.add_alternative(msg["html"], subtype="html", cte="quoted-printable")
    name = file_name(msg["headers"].get(ID_HEADER) or msg["headers"].get("Message-ID") or str(uuid.uuid4()))
    for sub in ("tmp", "new", "cur"):
        (inbox / sub).mkdir(parents=True, exist_ok=True)
    tmp = inbox / "tmp" / name
    tmp.write_bytes(mail.as_bytes())
    os.replace(tmp, inbox / "new" / name)


def _handler(state: State):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as SES

        def log_message(self, *args):  # quiet
            pass

        def _send(self, status: int, body: dict, code: str | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
            if code:
                self.send_header("x-amzn-ErrorType", f"{code}:")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _answer(self, work, call: dict | None = None) -> None:
            try:
                if not self.headers.get("Authorization", "").startswith("AWS4-HMAC-SHA256 "):
                    raise Refused(403, "MissingAuthenticationTokenException", "Missing Authentication Token")
                if state.faults.access_denied:
                    raise Refused(403, "AccessDeniedException", "not authorized to perform: ses:* on this resource")
                self._send(200, work())
            except Refused as exc:
                if call is not None:
                    call["status"] = exc.status
                self._send(exc.status, {"message": str(exc)}, exc.code)
            except (BrokenPipeError, ConnectionResetError):  # the client stopped waiting (timeout_after_accept)
                self.close_connection = True

        def do_GET(self):
            self._answer(lambda: self._get(self.path))

        def _get(self, path: str) -> dict:
            if path == "/v2/email/account":
                return {"SendQuota": {"Max24HourSend": 1e6, "MaxSendRate": state.faults.max_send_rate,
                                      "SentLast24Hours": float(len(state.accepted))},
                        "SendingEnabled": True, "ProductionAccessEnabled": True}
            m = re.fullmatch(r"/v2/email/configuration-sets/([^/?]+)", path)
            if m and m.group(1) in state.faults.configuration_sets:
                return {"ConfigurationSetName": m.group(1)}
            if m:
                raise Refused(404, "NotFoundException", f"Configuration set <{m.group(1)}> does not exist.")
            raise Refused(404, "NotFoundException", f"No route for GET {path}.")

        def do_POST(self):
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.path == "/_standin/faults":  # the control endpoint: change faults while running
                try:
                    change = json.loads(raw or b"{}")
                    with state.lock:
                        for name, value in change.items():
                            if not hasattr(state.faults, name):
                                raise KeyError(name)
                            setattr(state.faults, name, value)
                except (json.JSONDecodeError, KeyError, AttributeError) as exc:
                    return self._send(400, {"message": f"not a fault: {exc}"}, "BadRequestException")
                return self._send(200, {"faults": sorted(change)})
            if self.path != "/v2/email/outbound-bulk-emails":
                return self._send(404, {"message": f"No route for POST {self.path}."}, "NotFoundException")
            try:
                body = json.loads(raw or b"{}")
            except json.JSONDecodeError:
                return self._send(400, {"message": "The request body is not JSON."}, "BadRequestException")
            call = {"at": time.monotonic(), "entries": len(body.get("BulkEmailEntries") or []),
                    "configuration_set": body.get("ConfigurationSetName"), "status": 200}
            with state.lock:
                state.calls.append(call)
            self._answer(lambda: _bulk(state, body), call)

    return Handler


@contextmanager
def running(**faults) -> Iterator[tuple[str, State]]:
    """(base URL, state) of a stand-in with `Faults(**faults)`, stopped on exit."""
    state = State(Faults(**faults))
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
