"""A small SES v2 stand-in (moto has no SendBulkEmail): the REST-JSON calls the sender makes, on a free
loopback port, with injectable faults. It renders each entry's template the way SES's Handlebars does for
triple braces (raw) and double braces (HTML-escaped), and records what it accepted."""
from __future__ import annotations

import html
import json
import re
import threading
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator


@dataclass
class Faults:
    throttled: dict[str, int] = field(default_factory=dict)  # address -> attempts answered ACCOUNT_THROTTLED
    transient: dict[str, int] = field(default_factory=dict)  # address -> attempts answered TRANSIENT_FAILURE
    rejected: set[str] = field(default_factory=set)  # answered MESSAGE_REJECTED
    throttle_calls: int = 0  # whole calls answered 429 before any succeeds
    configuration_sets: set[str] = field(default_factory=lambda: {"feedback-events"})
    max_send_rate: float = 1000.0


@dataclass
class State:
    faults: Faults
    accepted: list[dict] = field(default_factory=list)
    calls: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _render(template: str, data: dict) -> str:
    out = re.sub(r"\{\{\{(\w+)\}\}\}", lambda m: str(data.get(m.group(1), "")), template)
    return re.sub(r"\{\{(\w+)\}\}", lambda m: html.escape(str(data.get(m.group(1), ""))), out)


def _handler(state: State):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet
            pass

        def _send(self, status: int, body: dict, error: str | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            if error:
                self.send_header("x-amzn-ErrorType", error)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path == "/v2/email/account":
                return self._send(200, {"SendQuota": {"Max24HourSend": 1e6, "MaxSendRate": state.faults.max_send_rate,
                                                      "SentLast24Hours": len(state.accepted)},
                                        "SendingEnabled": True, "ProductionAccessEnabled": True})
            m = re.fullmatch(r"/v2/email/configuration-sets/([^/]+)", self.path)
            if m and m.group(1) in state.faults.configuration_sets:
                return self._send(200, {"ConfigurationSetName": m.group(1)})
            if m:
                return self._send(404, {"message": f"Configuration set <{m.group(1)}> does not exist."},
                                  "NotFoundException")
            self._send(404, {"message": f"no route {self.path}"}, "NotFoundException")

        def do_POST(self):
            if self.path != "/v2/email/outbound-bulk-emails":
                return self._send(404, {"message": f"no route {self.path}"}, "NotFoundException")
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            with state.lock:
                state.calls += 1
                if state.faults.throttle_calls > 0:
                    state.faults.throttle_calls -= 1
                    return self._send(429, {"message": "Maximum sending rate exceeded."}, "TooManyRequestsException")
            entries = body.get("BulkEmailEntries", [])
            if not body.get("FromEmailAddress"):
                return self._send(400, {"message": "FromEmailAddress is required"}, "BadRequestException")
            if not 1 <= len(entries) <= 50:
                return self._send(400, {"message": "between 1 and 50 BulkEmailEntries"}, "BadRequestException")
            config_set = body.get("ConfigurationSetName")
            if config_set and config_set not in state.faults.configuration_sets:
                return self._send(404, {"message": f"Configuration set <{config_set}> does not exist."},
                                  "NotFoundException")
            template = body["DefaultContent"]["Template"]["TemplateContent"]
            self._send(200, {"BulkEmailEntryResults": [self._entry(e, template, config_set, body) for e in entries]})

        def _entry(self, entry: dict, template: dict, config_set: str | None, body: dict) -> dict:
            to = entry["Destination"]["ToAddresses"][0]
            f = state.faults
            with state.lock:
                for kind, counts in (("ACCOUNT_THROTTLED", f.throttled), ("TRANSIENT_FAILURE", f.transient)):
                    if counts.get(to, 0) > 0:
                        counts[to] -= 1
                        return {"Status": kind, "Error": "try again"}
                if to in f.rejected:
                    return {"Status": "MESSAGE_REJECTED", "Error": "Email address is on the suppression list"}
                data = json.loads(entry["ReplacementEmailContent"]["ReplacementTemplate"]["ReplacementTemplateData"])
                state.accepted.append({
                    "from": body["FromEmailAddress"], "to": to, "configuration_set": config_set,
                    "subject": _render(template["Subject"], data), "html": _render(template["Html"], data),
                    "text": _render(template["Text"], data),
                    "headers": {h["Name"]: h["Value"] for h in entry.get("ReplacementHeaders", [])},
                    "tags": {t["Name"]: t["Value"] for t in entry.get("ReplacementTags", [])}})
            return {"Status": "SUCCESS", "MessageId": str(uuid.uuid4())}

    return Handler


@contextmanager
def running(faults: Faults | None = None) -> Iterator[tuple[str, State]]:
    state = State(faults or Faults())
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()
