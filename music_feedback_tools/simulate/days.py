"""Consecutive simulated days as an operator would try them, then an audit of the stores.

Each day is `run_day` (batch, export, email at each marketplace's send time, listeners on the real
endpoints, playlists, metrics). Within each day's service session, after the listeners, the outside world
does what tests the promises across days and channels: some listeners unsubscribe with the one-click POST
of a delivered message, the voice assistant asks whether to prompt after playbacks of earlier batches'
candidates and of the pairs most likely to slip through (answered already, listeners emailed today or just
unsubscribed), and a held-out listener tries to answer by voice and through the feedback API. On some
days an email sender is killed with SIGKILL mid-run and the day's email step resumes it. `python -m music_feedback_tools.simulate.days` runs it from a shell.
"""
from __future__ import annotations

import json
import os
import random
import secrets
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import urllib3
from dagster import DagsterInstance, serialize_value

from music_feedback import settings
from music_feedback.programs.model import Program
from music_feedback_tools.simulate import listeners as sim
from music_feedback_tools.simulate.day import DayReport, delivered, listener_time, run_day, send_times

UNSUBSCRIBE_SHARE = 0.02  # of the day's delivered messages
TARGETED = 8  # prompts per kind of pair the promises are most likely to miss, per day


@dataclass
class DaysReport:
    days: list[DayReport] = field(default_factory=list)
    actions: Counter = field(default_factory=Counter)  # what the outside world did, and what it was told
    crashes: list[dict] = field(default_factory=list)
    audit: dict | None = None

    @property
    def success(self) -> bool:
        return bool(self.days) and all(d.success for d in self.days)

    @property
    def sessions(self) -> list[tuple[float, float]]:
        return [s for d in self.days for s in d.sessions] + [c["session"] for c in self.crashes if c.get("session")]


def run_days(defs, program: Program, days: list[date], inst: DagsterInstance, *, crashes: int = 1,
             crash_from: int = 1, echo=None, audit: bool = True, stop_on_failure: bool = True,
             service_workers: int = 2) -> DaysReport:
    """Run `days` in order; kill an email sender mid-run on days from index `crash_from` on until `crashes`
    kills landed mid-send. Stops at the first failed day unless told not to (a failed report or metrics
    step still leaves the day's contacts to audit); audits the stores at the end."""
    out = DaysReport()
    for i, day in enumerate(days):
        if echo:
            echo(f"=== {day} ===")
        crash = None
        if program.channel("email") and i >= crash_from and sum(c["mid_send"] for c in out.crashes) < crashes:
            def crash(day=day):
                out.crashes.append(kill_email_mid_run(program, day, inst))
        report = run_day(defs, program, day, inst, echo=echo, before_email=crash, service_workers=service_workers,
                         after_listeners=lambda url, headers, day=day: outside_world(program, day, url, headers,
                                                                                     out.actions))
        if crash and out.crashes and out.crashes[-1]["day"] == day.isoformat():
            check_resumed(program, out.crashes[-1])
        out.days.append(report)
        if not report.success and stop_on_failure:
            break
    if audit:
        from music_feedback_tools.simulate.audit import audit as run_audit
        out.audit = run_audit(program, [date.fromisoformat(d.day) for d in out.days], sessions=out.sessions)
    return out


# --- the outside world between the listeners and the next day ---------------------------------------------
def outside_world(program: Program, day: date, url: str, headers: dict, actions: Counter) -> str:
    """Unsubscribes, voice prompts on earlier batches and a held-out listener's tries, through the service."""
    rng = random.Random(f"{day}:outside")
    public, api = sim.Http(url, 4), sim.Http(url, 4, headers)
    before = Counter(actions)
    try:
        gone = unsubscribe(program, day, public, rng, actions)
        voice_earlier(program, day, api, rng, gone, actions)
        holdout_tries(program, day, api, public, rng, actions)
    except urllib3.exceptions.HTTPError as exc:
        actions[f"connection: {type(exc).__name__}"] += 1
    done = {k: v - before.get(k, 0) for k, v in actions.items() if v != before.get(k, 0)}
    return "outside world: " + ", ".join(f"{k} {v}" for k, v in sorted(done.items()))


def unsubscribe(program: Program, day: date, client: sim.Http, rng: random.Random, actions: Counter) -> list[int]:
    """RFC 8058 one-click: POST List-Unsubscribe=One-Click to the message's unsubscribe link; then what the
    serving API still offers them."""
    got = [(p, lid) for p, lid, _ in delivered(program, day.isoformat()) if p.exists()]
    chosen = rng.sample(got, min(len(got), max(1, round(UNSUBSCRIBE_SHARE * len(got))))) if got else []
    gone = []
    for path, lid in chosen:
        link = sim.message_links(path.read_bytes()).get("unsubscribe")
        reply = client.post(link, data={"List-Unsubscribe": "One-Click"})
        actions["unsubscribed" if reply.status_code == 200 else f"unsubscribe {reply.status_code}"] += 1
        if reply.status_code == 200:
            gone.append(lid)
    return gone


def _voice_rows(program: Program) -> pl.DataFrame:
    """The voice channel's unexpired candidates, whatever their status."""
    from music_feedback.resources import candidate_store
    voice = program.channel("voice")
    rows = candidate_store().for_channel(program.program_id, voice.channel_id, limit=10**7)
    return pl.DataFrame([{k: r[k] for k in ("listener_id", "track_id", "batch_date", "status")} for r in rows],
                        schema={"listener_id": pl.Int64, "track_id": pl.Int64, "batch_date": pl.Utf8,
                                "status": pl.Utf8})


def voice_earlier(program: Program, day: date, client: sim.Http, rng: random.Random, gone: list[int],
                  actions: Counter) -> None:
    """The assistant after a playback: of a track still pending from an earlier batch (a random share), and
    of the pairs the promises are most likely to miss, whatever the candidate store says of them, because
    the assistant asks after every track it plays: pairs answered already, listeners emailed today, and
    listeners who just unsubscribed."""
    from music_feedback.resources import feedback_store
    if program.channel("voice") is None:
        return
    rows = _voice_rows(program)
    earlier = rows.filter((pl.col("status") == "pending") & (pl.col("batch_date") < day.isoformat()))
    fb = feedback_store()
    answered = fb.answers(program.program_id, float("inf"))
    emailed = fb.ledger_frame(program.program_id, day.isoformat()).filter(pl.col("state") == "sent")
    seed = rng.randrange(2**31)
    picks = {
        "random": earlier.sample(min(earlier.height, max(TARGETED // 2, earlier.height // 50)), seed=seed),
        # a voice candidate of the answered pair first (the prompt has something to find), then any
        "answered": pl.concat([answered.join(rows, on=["listener_id", "track_id"], how="semi"),
                               answered.sample(min(answered.height, TARGETED // 2), seed=seed)],
                              how="diagonal").head(TARGETED),
        "emailed_today": rows.filter(pl.col("batch_date") < day.isoformat())
                             .join(emailed.select("listener_id").unique(), on="listener_id").head(TARGETED),
        "unsubscribed": rows.filter(pl.col("listener_id").is_in(gone)).head(TARGETED),
    }
    seen = set()
    for kind, chosen in picks.items():
        for lid, tid in chosen.select("listener_id", "track_id").unique(maintain_order=True).iter_rows():
            if (lid, tid) in seen:
                continue
            seen.add((lid, tid))
            _prompt(program, client, lid, tid, f"voice_{kind}", actions)
    for lid in gone:  # the serving API must not offer an unsubscribed listener's candidates
        reply = client.get(f"/v1/programs/{program.program_id}/listeners/{lid}/candidates")
        if reply.status_code == 200 and reply.json()["count"]:
            actions["candidates_served_after_unsubscribe"] += reply.json()["count"]


def _prompt(program: Program, client: sim.Http, lid: int, tid: int, kind: str, actions: Counter,
            answer_anyway: bool = False) -> tuple[int, int | None]:
    base = f"/v1/programs/{program.program_id}/listeners/{lid}"
    prompt = client.get(f"{base}/voice-prompt", params={"track": tid})
    ask = prompt.status_code == 200 and prompt.json()["ask"]
    actions[f"{kind}_prompted"] += 1
    actions[f"{kind}_asked"] += int(ask)
    if not ask and not answer_anyway:
        return prompt.status_code, None
    reply = client.post(f"{base}/voice-answers", json_body={
        "trackId": tid, "answer": random.Random(f"{lid}:{tid}").choice(["yes", "no"]),
        "submissionId": secrets.token_urlsafe(12)})
    actions[f"{kind}_answer_{reply.status_code}"] += 1
    return prompt.status_code, reply.status_code


def holdout_tries(program: Program, day: date, api: sim.Http, public: sim.Http, rng: random.Random,
                  actions: Counter) -> None:
    """A held-out listener answers anyway: by voice after the prompt said no, and through the feedback API
    with a link to their (never sent) email request, signed with the deployment's key as a forwarded or
    guessed link would be."""
    from music_feedback.delivery.holdout import is_held_out
    from music_feedback.delivery.links import LinkSigner
    from music_feedback.resources import feedback_store
    if program.channel("voice"):
        rows = _voice_rows(program)
        held = rows.filter(pl.col("listener_id").map_elements(lambda v: is_held_out(program, v),
                                                                 return_dtype=pl.Boolean))
        if held.height:
            lid, tid = held.row(rng.randrange(held.height))[:2]
            _prompt(program, api, lid, tid, "held_out_voice", actions, answer_anyway=True)
    email = program.channel("email")
    if email is None:
        return
    ledger = feedback_store().ledger_frame(program.program_id, day.isoformat())
    held = ledger.filter((pl.col("state") == "held_out") & (pl.col("channel") == email.channel_id))
    if held.is_empty():
        return
    lid, tid = held.select("listener_id", "track_id").row(rng.randrange(held.height))
    expires = int(listener_time(program, day) + program.feedback.link_ttl_days * 86_400)
    token = LinkSigner.from_env().sign("feedback", program.program_id, lid, tid, day.isoformat(), email.channel_id,
                                       expires)
    reply = public.post("/v1/feedback", json_body={"token": token, "rating": "up",
                                                   "submissionId": secrets.token_urlsafe(12)})
    actions[f"held_out_feedback_api_{reply.status_code}"] += 1


# --- a sender killed mid-run ----------------------------------------------------------------------------
def _outbox() -> Path:
    return settings.outbox_dir() / "new"


def _inodes() -> dict[str, int]:
    folder = _outbox()
    return {e.name: e.inode() for e in os.scandir(folder)} if folder.is_dir() else {}


def kill_email_mid_run(program: Program, day: date, inst: DagsterInstance, timeout: float = 180) -> dict:
    """Run one marketplace's email job in a child process on the same instance and stores, and SIGKILL it as
    soon as its first message is in the outbox. The marketplace with the most stored candidates, so the kill
    has the most messages to land among."""
    from music_feedback.resources import candidate_store, feedback_store
    email = program.channel("email")
    stored = Counter(r["marketplace"] for r in candidate_store().for_channel(program.program_id, email.channel_id,
                                                                              limit=10**7)
                     if r["batch_date"] == day.isoformat())
    marketplace = max(program.marketplaces, key=lambda m: stored.get(m, 0))
    before = _inodes()
    folder = _outbox()
    folder.mkdir(parents=True, exist_ok=True)
    mtime = folder.stat().st_mtime_ns
    ref = serialize_value(inst.get_ref()) if inst.get_ref() is not None else ""
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "music_feedback_tools.simulate.days", "--email-child", day.isoformat(),
                              marketplace], env={**os.environ, "MUSIC_FEEDBACK_SIM_INSTANCE": ref})
    deadline = time.monotonic() + timeout
    while child.poll() is None and time.monotonic() < deadline and folder.stat().st_mtime_ns == mtime:
        time.sleep(0.0005)  # a message renamed into new/ changes the folder's mtime
    exited = child.poll()
    if exited is None:
        os.kill(child.pid, signal.SIGKILL)
    child.wait()
    wall = time.perf_counter() - started
    written = {k: v for k, v in _inodes().items() if k not in before}
    left = feedback_store().due(program.program_id, day.isoformat(), email.channel_id, marketplace)
    at = send_times(program, day)[marketplace]
    return {"day": day.isoformat(), "marketplace": marketplace, "killed": exited is None, "exit": exited,
            "written_before_kill": len(written), "unsettled_after_kill": left.height,
            "mid_send": exited is None and bool(written) and left.height > 0,
            "written": written, "session": (at, at + wall + 1.0)}


def check_resumed(program: Program, crash: dict) -> None:
    """After the day's email step ran the partition again: nothing left unsettled, and no message written
    before the kill was written again (Maildir renames a rewrite into a new inode)."""
    from music_feedback.resources import feedback_store
    email = program.channel("email")
    now = _inodes()
    crash["rewritten"] = sum(1 for name, ino in crash["written"].items() if now.get(name) != ino)
    crash["unsettled_after_resume"] = feedback_store().due(program.program_id, crash["day"], email.channel_id,
                                                           crash["marketplace"]).height
    crash["written"] = len(crash["written"])


def _email_child(day: str, marketplace: str) -> None:
    """The killed sender: the email job of one partition, at its send time, one worker, on the parent's instance."""
    from dagster import MultiPartitionKey, deserialize_value

    from music_feedback.definitions import build_definitions
    from music_feedback.defs.delivery.jobs import email_job_name
    from music_feedback.programs.loader import load_programs
    from music_feedback.runner import QUIET, execute
    program = load_programs()[0]
    ref = os.environ.get("MUSIC_FEEDBACK_SIM_INSTANCE")
    inst = DagsterInstance.from_ref(deserialize_value(ref)) if ref else DagsterInstance.get()
    job = build_definitions().resolve_job_def(email_job_name(program))
    execute(job, MultiPartitionKey({"date": day, "marketplace": marketplace}), inst, {},
            run_config={**QUIET, "ops": {f"{program.slug}__email_deliveries": {"config": {"at_send_time": True,
                                                                                          "workers": 1}}}})


# --- from a shell -----------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    import argparse
    p = argparse.ArgumentParser(prog="python -m music_feedback_tools.simulate.days", description=__doc__.split("\n")[0])
    p.add_argument("--days", type=int, default=9, help="consecutive days ending with the warehouse's last")
    p.add_argument("--crashes", type=int, default=1, help="email senders to kill mid-run")
    p.add_argument("--report-json", help="write the days' steps, the actions and the audit here")
    p.add_argument("--email-child", nargs=2, metavar=("DAY", "MARKETPLACE"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.email_child:
        _email_child(*args.email_child)
        return 0
    from music_feedback import runner
    from music_feedback.definitions import build_definitions
    from music_feedback.programs.loader import load_programs
    from music_feedback_tools.simulate.audit import summary
    from music_feedback.warehouse.duckdb_warehouse import DuckDBWarehouse
    program, defs = load_programs()[0], build_definitions()
    last = runner.latest_complete_day(DuckDBWarehouse(path=str(settings.warehouse_path())).meta())
    days = [last - timedelta(days=args.days - 1 - i) for i in range(args.days)]
    inst = runner.instance()
    runner.ensure_models(defs, program, inst, day=days[0])  # a champion from before the first day
    started = time.perf_counter()
    report = run_days(defs, program, days, inst, crashes=args.crashes, echo=lambda line: print(line, flush=True),
                      stop_on_failure=False)  # a failed step still leaves the day's contacts to audit
    wall = time.perf_counter() - started
    print(summary(report.audit))
    if args.report_json:
        Path(args.report_json).write_text(json.dumps({
            "success": report.success, "wall_s": round(wall, 1), "days": [d.day for d in report.days],
            "steps": [d.steps for d in report.days],
            "failure": next((d.failure for d in report.days if d.failure), None),
            "actions": dict(report.actions), "crashes": report.crashes, "audit": report.audit}, default=str))
    return 0 if report.success else 1


if __name__ == "__main__":
    sys.exit(main())
