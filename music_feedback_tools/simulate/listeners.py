"""Listeners reacting to the day's requests through the real HTTP endpoints, at the seed's rates: of the
messages delivered 30% are opened, 18% clicked and 15% answered; the voice assistant gets 5,000 answers a
day at the seed's scale (100,000 emails), scaled to the day. Deterministic for a day."""
from __future__ import annotations

import binascii
import json
import random
import re
import secrets
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import urlencode

import urllib3

from music_feedback.programs.model import Program
from music_feedback.store.base import CandidateStore

OPEN, CLICK, SUBMIT = 0.30, 0.18, 0.15
VOICE_PER_100K = 5_000
MACHINE_OPENS = 0.35  # share of opens fetched by a mail privacy proxy
LINK = re.compile(rb'(?:href|src)="https?://[^/"]+(/[a-z]/[^"]+)"')
CAMPAIGN = re.compile(rb"X-Campaign: ([^\r\n]+)")
AGENTS = ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
          "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36")
PROXY = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"


class Http:
    """A small urllib3 client: half of httpx's CPU per request (0.19 against 0.40 ms measured), which
    matters with the server on the same cores and some 60,000 requests a simulated day."""

    def __init__(self, url: str, workers: int, headers: dict | None = None):
        host, port = url.removeprefix("http://").split(":")
        self.pool = urllib3.HTTPConnectionPool(host, int(port), maxsize=workers, block=True, retries=False,
                                               timeout=30.0)
        self.headers = headers or {}

    def get(self, path: str, params: dict | None = None, headers: dict | None = None) -> "Reply":
        if params:
            path += "?" + urlencode(params)
        return Reply(self.pool.request("GET", path, headers={**self.headers, **(headers or {})}, redirect=False))

    def post(self, path: str, data: dict | None = None, json_body: dict | None = None) -> "Reply":
        if json_body is not None:
            body, kind = json.dumps(json_body), "application/json"
        else:
            body, kind = urlencode(data or {}, doseq=True), "application/x-www-form-urlencoded"
        return Reply(self.pool.request("POST", path, body=body, headers={**self.headers, "Content-Type": kind}))


class Reply:
    def __init__(self, response):
        self.status_code, self.headers, self.content = response.status, response.headers, response.data

    @property
    def text(self) -> str:
        return self.content.decode(errors="replace")

    def json(self):
        return json.loads(self.content)


@dataclass
class Outcome:
    counts: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)  # clients run on many threads


def message_links(raw: bytes) -> dict[str, str]:
    """The open, click and feedback paths of a delivered message (its HTML part, quoted-printable decoded)."""
    body = binascii.a2b_qp(raw.split(b"text/html", 1)[-1])
    links = {}
    for path in LINK.findall(body):
        text = path.decode().replace("&amp;", "&")
        links.setdefault({"o": "open", "c": "click", "u": "unsubscribe"}.get(text[1], "other"), text)
    return links


def _listener(program: Program, rng: random.Random, client: Http, message: Path, out: Outcome) -> None:
    u = rng.random()
    if u >= OPEN:
        return  # most never open it: their message is not even read
    raw = message.read_bytes()
    links = message_links(raw)
    agent = PROXY if rng.random() < MACHINE_OPENS else rng.choice(AGENTS)
    _call(out, "opened", client.get(links["open"], headers={"user-agent": agent}))
    if u >= CLICK:
        return
    click = client.get(links["click"], headers={"user-agent": rng.choice(AGENTS)})
    _call(out, "clicked", click, 303)
    form_path = click.headers.get("location", "")
    if not form_path.startswith("/f/"):
        return
    _call(out, "viewed_form", client.get(form_path))
    if u >= SUBMIT:
        return
    genre = CAMPAIGN.search(raw).group(1).decode().split("-", 1)[-1] if CAMPAIGN.search(raw) else ""
    tags = [t for t in program.feedback.tags if t == genre and rng.random() < 0.6]
    tags += rng.sample(program.feedback.tags, rng.randint(0, 1))
    data = {"rating": "up" if rng.random() < 0.68 else "down", "submissionId": secrets.token_urlsafe(12),
            "tags": sorted(set(tags))}
    if rng.random() < 0.1:
        data["comment"] = rng.choice(["Great hook!", "Not for me.", "Love the production.", "Too long."])
    _call(out, "submitted", client.post(form_path, data=data))


def _call(out: Outcome, name: str, response: Reply, ok: int = 200) -> None:
    with out.lock:
        if response.status_code == ok:
            out.counts[name] += 1
        else:
            out.errors[f"{name} {response.status_code}: {response.text[:120]}"] += 1


def email_listeners(program: Program, url: str, messages: list[Path], seed: int, workers: int = 16) -> Outcome:
    out = Outcome()
    rngs = [random.Random(f"{seed}:{p.name}") for p in messages]
    client = Http(url, workers)

    def one(i: int) -> None:
        try:
            _listener(program, rngs[i], client, messages[i], out)
        except urllib3.exceptions.HTTPError as exc:  # the service went away: count it, the day goes on
            with out.lock:
                out.errors[f"connection: {type(exc).__name__}"] += 1

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, range(len(messages))))
    return out


def voice_listeners(program: Program, store: CandidateStore, url: str, headers: dict, day: str, delivered: int,
                    seed: int, workers: int = 8, now: datetime | None = None) -> Outcome:
    """The assistant after playback: asks whether to prompt, then posts the spoken answer."""
    out, channel = Outcome(), program.channel("voice")
    if channel is None:
        return out
    wanted = round(VOICE_PER_100K * delivered / 100_000)
    pool_rows = [r for r in store.for_channel(program.program_id, channel.channel_id, limit=max(wanted * 3, 1),
                                              now=now)
                 if r["batch_date"] == day and r["status"] == "pending"]
    rng = random.Random(f"{seed}:voice")
    chosen = rng.sample(pool_rows, min(wanted, len(pool_rows)))

    def ask(row: dict) -> None:
        base = f"/v1/programs/{program.program_id}/listeners/{row['listener_id']}"
        prompt = client.get(f"{base}/voice-prompt", params={"track": row["track_id"]})
        _call(out, "voice_prompted", prompt)
        if prompt.status_code != 200 or not prompt.json()["ask"]:
            with out.lock:
                out.counts["voice_not_asked"] += 1
            return
        answer = "yes" if random.Random(f"{seed}:{row['listener_id']}:{row['track_id']}").random() < 0.7 else "no"
        _call(out, "voice_answered", client.post(f"{base}/voice-answers", json_body={
            "trackId": row["track_id"], "answer": answer, "submissionId": secrets.token_urlsafe(12)}))

    client = Http(url, workers, headers)

    def one(row: dict) -> None:
        try:
            ask(row)
        except urllib3.exceptions.HTTPError as exc:
            with out.lock:
                out.errors[f"connection: {type(exc).__name__}"] += 1

    with ThreadPoolExecutor(workers) as executor:
        list(executor.map(one, chosen))
    return out
