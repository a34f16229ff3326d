"""The delivery section of `make bench`: the day's email rendered and sent to a fresh local outbox
(every marketplace as at its send time), then sustained feedback POSTs over loopback from `wrk`, and a
check that every accepted POST is in the store."""
from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import datetime, time as dtime, timedelta, timezone
from pathlib import Path

from music_feedback import runner, settings
from music_feedback.service.process import service
from music_feedback.delivery.email.maildir import MaildirSender
from music_feedback.delivery.email.plan import plan, send_window
from music_feedback.delivery.email.render import Renderer
from music_feedback.delivery.email.send import EmailDelivery, SendOptions
from music_feedback.delivery.links import LinkSigner
from music_feedback.delivery.settings import address_template, public_url
from music_feedback.feedback.sqlite_store import SQLiteFeedbackStore
from music_feedback.programs.model import Program
from music_feedback.store import SQLiteCandidateStore
from music_feedback.warehouse.duckdb_warehouse import DuckDBWarehouse

# One worker: SQLite takes one writer at a time, and two processes waiting on its lock sleep in steps of
# up to 100 ms (its busy handler), which is what the P99 would show.
SECONDS, CONNECTIONS, THREADS, WORKERS = 10, 8, 2, 1
EMAIL_MIN_SCORE = 0.5
LUA = Path(__file__).with_name("feedback_load.lua")


def seed_volume(program: Program, min_score: float) -> Program:
    """The program with the email channel's minScore lowered: the generated day holds ~90K email candidates
    at >= 0.6, and the target is timed at the seed's 100,000 (the limit still caps it)."""
    channels = [c.model_copy(update={"config": {**c.config, "minScore": min_score}}) if c.type == "email" else c
                for c in program.channels]
    return program.model_copy(update={"channels": channels})


def email_figures(program: Program, day, store: SQLiteCandidateStore, feedback: SQLiteFeedbackStore) -> dict:
    program = seed_volume(program, EMAIL_MIN_SCORE)
    outbox = settings.data_home() / "outbox"
    shutil.rmtree(outbox, ignore_errors=True)
    warehouse = DuckDBWarehouse(path=str(settings.warehouse_path()))
    renderer = Renderer(program, LinkSigner.from_env(), public_url(), address_template())
    sender = MaildirSender(path=str(outbox))
    started = time.perf_counter()
    plan(program, store, feedback, day, datetime.combine(day + timedelta(days=1), dtime(), tzinfo=timezone.utc))
    planned = time.perf_counter() - started
    sent = 0
    for marketplace in program.marketplaces:
        send_at, _ = send_window(program, marketplace, day)
        delivery = EmailDelivery(program, store, feedback, sender, renderer, warehouse,
                                 SendOptions(clock=lambda s=send_at: s + 60))
        report = delivery.run(day, marketplace)
        sent += report.counts["sent"]
        print(f"email {marketplace}: {dict(report.counts)} {dict(report.reasons.most_common(3))}", file=sys.stderr)
    total = time.perf_counter() - started
    files = sum(1 for _ in (outbox / "new").iterdir()) if (outbox / "new").exists() else 0
    return {"emails_sent": sent, "email_send_s": round(total, 2), "email_plan_s": round(planned, 2),
            "email_bench_min_score": EMAIL_MIN_SCORE,
            "emails_per_s": round(sent / total), "emails_in_outbox": files}


def feedback_figures(program: Program, day, feedback: SQLiteFeedbackStore) -> dict:
    links = LinkSigner.from_env()
    expires = int(time.time()) + 86_400
    rows = sqlite3.connect(feedback.path).execute(
        "SELECT listener_id, track_id, channel FROM delivery_ledger WHERE program_id = ? AND batch_date = ? "
        "AND state = 'sent' LIMIT 60000", (program.program_id, day.isoformat())).fetchall()
    with tempfile.NamedTemporaryFile("w", suffix=".tokens", delete=False) as f:
        f.write("\n".join(links.sign("feedback", program.program_id, lid, tid, day.isoformat(), ch, expires)
                          for lid, tid, ch in rows))
    with service(workers=WORKERS) as (url, _):
        subprocess.run(["wrk", "-t", str(THREADS), "-c", str(CONNECTIONS), "-d", "2s", "-s", str(LUA), url, "--",
                        f.name, str(THREADS), "warm"], capture_output=True, check=True)  # warm-up, not counted
        before = _bench_submissions(feedback)
        out = subprocess.run(["wrk", "-t", str(THREADS), "-c", str(CONNECTIONS), "-d", f"{SECONDS}s", "-s", str(LUA),
                              url, "--", f.name, str(THREADS), "run"], capture_output=True, text=True,
                             check=True).stdout
    Path(f.name).unlink()
    got = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line[:1].isupper() and " " in line}
    accepted, requests, seconds = int(got["ACCEPTED"][0]), int(got["REQUESTS"][0]), float(got["REQUESTS"][1])
    stored = _bench_submissions(feedback) - before
    return {"feedback_rps": round(requests / seconds, 1), "feedback_p99_ms": round(float(got["P99"][0]), 2),
            "feedback_p50_ms": round(float(got["P50"][0]), 2), "feedback_requests": requests,
            "feedback_accepted": accepted, "feedback_errors": int(got["ERRORS"][0]),
            "feedback_lost": max(accepted - stored, 0), "feedback_connections": CONNECTIONS,
            "feedback_workers": WORKERS}


def _bench_submissions(feedback: SQLiteFeedbackStore) -> int:
    return sqlite3.connect(feedback.path).execute(
        "SELECT COUNT(*) FROM submissions WHERE submission_id LIKE 'bench-%'").fetchone()[0]


def run(program: Program, args) -> tuple[dict, bool]:
    day = runner.latest_complete_day(DuckDBWarehouse(path=str(settings.warehouse_path())).meta())
    for name in ("feedback.sqlite", "feedback.sqlite-wal", "feedback.sqlite-shm"):
        (settings.data_home() / name).unlink(missing_ok=True)  # a fresh ledger: the day is sent again
    store = SQLiteCandidateStore(path=str(settings.store_path()))
    feedback = SQLiteFeedbackStore(path=str(settings.feedback_store_path()))
    figures = email_figures(program, day, store, feedback)
    if not shutil.which("wrk"):
        return {**figures, "feedback_failed": "wrk is not installed: `make bench` installs it"}, False
    figures.update(feedback_figures(program, day, feedback))
    ok = (figures["emails_in_outbox"] == figures["emails_sent"] and figures["feedback_lost"] == 0
          and figures["feedback_accepted"] == figures["feedback_requests"] > 0)
    return figures, ok
