"""A whole day from one command: the batch, the export, the email at each marketplace's send time,
listeners answering through the real endpoints, the playlist update and the metrics report. Each step is
the job its schedule runs."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date, datetime, time as dtime, timedelta, timezone
from typing import Callable

from dagster import DagsterInstance

from music_feedback import runner, settings
from music_feedback.clock import Clock
from music_feedback.delivery.email.maildir import file_name
from music_feedback.delivery.email.render import message_id
from music_feedback.delivery.runner import email_summary, run_email
from music_feedback.programs.model import Program
from music_feedback_tools.simulate import listeners


@dataclass
class DayReport:
    day: str
    success: bool = True
    steps: dict[str, float] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)
    failure: str | None = None
    summary: dict = field(default_factory=dict)
    batch: object | None = None  # the batch's runner.BatchReport
    # Simulated-time intervals in which the product wrote (email at send time, the service's session):
    # every stamp of the day must fall in one of them.
    sessions: list[tuple[float, float]] = field(default_factory=list)


LISTENER_DELAY_S = 3600


def listener_time(program: Program, day: date) -> float:
    """When listeners react to batch day D's requests: an hour after the last marketplace's send time on
    D+1 (16:00 UTC for the shipped program, before the 18:00 UTC playlist update)."""
    if program.channel("email") is None:
        return datetime.combine(day + timedelta(days=1), dtime(12), timezone.utc).timestamp()
    from music_feedback.delivery.email.plan import send_window
    return max(send_window(program, m, day)[0] for m in program.marketplaces) + LISTENER_DELAY_S


def send_times(program: Program, day: date) -> dict[str, float]:
    from music_feedback.delivery.email.plan import send_window
    return {m: send_window(program, m, day)[0] for m in program.marketplaces} if program.channel("email") else {}


def run_job(defs, name: str, partition: str, inst: DagsterInstance) -> dict:
    from music_feedback.run_guard import run_tags
    result = runner.execute(defs.resolve_job_def(name), partition, inst, run_tags())
    return {"success": result.success, "meta": result.materializations, "error": result.error}


def day_messages(program: Program, day: str):
    """The delivered files of the day's email requests (a file's name derives from its request's key): the
    embedded outbox, or the inbox the SES stand-in of `make demo-aws` delivers to."""
    return [path for path, _, _ in delivered(program, day)]


def delivered(program: Program, day: str) -> list[tuple]:
    """(file, listener_id, track_id) of the day's sent email requests."""
    from music_feedback.resources import feedback_store
    folder = settings.outbox_dir() / "new"
    if not folder.is_dir():
        return []  # a real mail service: nobody here can read what the listeners received
    ledger = feedback_store().ledger_frame(program.program_id, day)
    sent = ledger.filter((ledger["state"] == "sent") & (ledger["channel"] == program.channel("email").channel_id))
    domain = program.channel("email").typed_config().from_address.rsplit("@", 1)[-1].rstrip(">").strip()
    return [(folder / file_name(message_id(program.program_id, day, lid, tid, ch, domain)), lid, tid)
            for lid, tid, ch in sent.select("listener_id", "track_id", "channel").iter_rows()]


class _Lines(list):
    """The report's lines, each also handed to `echo` as it comes, so a long day shows its progress."""

    def __init__(self, echo):
        super().__init__()
        self.echo = echo

    def append(self, line: str) -> None:
        super().append(line)
        if self.echo:
            self.echo(line)


def run_day(defs, program: Program, day: date, inst: DagsterInstance, simulate: bool = True, echo=None,
            on_step=None, before_email: Callable[[], None] | None = None,
            after_listeners: Callable[[str, dict], str] | None = None, service_workers: int = 2) -> DayReport:
    """`on_step(name)` is called as each step starts (the AWS demo counts adapter time per step);
    `before_email()` runs just before the email step (a sender killed mid-run, which the step resumes);
    `after_listeners(url, headers)` runs in the listeners' service session, on its clock, and returns a
    line for the report (what else the outside world did that day). `service_workers`: one suffices for a
    tiny day and leaves the CPU to the rest."""
    report, key = DayReport(day.isoformat()), day.isoformat()
    report.lines = _Lines(echo)

    def step(name: str, fn):
        if on_step:
            on_step(name)
        if echo:
            echo(f"{name}: running")
        started = time.perf_counter()
        out = fn()
        report.steps[name] = round(time.perf_counter() - started, 2)
        return out

    batch = report.batch = step("batch", lambda: runner.run_batch(defs, program, day, inst))
    report.lines.append(runner.summary(batch, program.metrics.score_bands))
    if not batch.success:
        return _fail(report, f"batch: {batch.failure}")
    for name, job in (("export", f"{program.slug}_export"),):
        res = step(name, lambda: run_job(defs, job, key, inst))
        if not res["success"]:
            return _fail(report, f"{name}: {res['error']}")
        report.lines.append(f"export: {res['meta']['s3_export'].get('dagster/row_count', 0):,} rows to "
                            f"{res['meta']['s3_export'].get('location')}")
    if program.channel("email"):
        if before_email:
            before_email()
        started = time.perf_counter()
        sent = step("email", lambda: run_email(defs, program, day, inst))
        wall = time.perf_counter() - started
        # each marketplace's run reads the clock from its send time on, within the step's wall time
        report.sessions += [(at, at + wall + 1.0) for at in send_times(program, day).values()]
        report.lines.append(email_summary(sent))
        if not all(r["success"] for r in sent):
            return _fail(report, "email: " + "; ".join(r["error"] for r in sent if r["error"]))
    if simulate:
        report.lines.extend(step("listeners", lambda: _simulate(program, day, report, after_listeners,
                                                                  service_workers)))
    for name in ("playlists", "metrics"):
        res = step(name, lambda n=name: run_job(defs, f"{program.slug}_{n}", key, inst))
        if not res["success"]:
            return _fail(report, f"{name}: {res['error']}")
        if name == "playlists":
            m = res["meta"].get("curated_playlists", {})
            report.lines.append(f"playlists: {m.get('entered', 0)} entered, {m.get('left', 0)} left, "
                                f"{m.get('members', 0)} tracks in {m.get('playlists', 0)} playlists")
        else:
            m = res["meta"].get("daily_metrics", {})
            report.summary = m
            report.lines.append(funnel_table(program, key))
            report.lines.append(f"report: {m.get('report')}")
    report.lines.append(f"outbox: {settings.outbox_dir()}")
    return report


def _simulate(program: Program, batch_day: date, report: DayReport, after=None, workers: int = 2) -> list[str]:
    """Listeners answer through the service, which runs on the simulated clock at listener time of D+1."""
    from music_feedback.resources import candidate_store
    from music_feedback.service.process import service
    day = batch_day.isoformat()
    messages = [p for p in day_messages(program, day) if p.exists()]
    seed = int(day.replace("-", ""))
    start = listener_time(program, batch_day)
    # Stopped at listener time: every decision of the session is made at the same simulated instant, so a
    # slower adapter set (the AWS day) sees the same seven-day windows and gives the same funnel.
    began, clock = time.perf_counter(), Clock.stopped(start)
    extra = None
    with service(workers=workers, clock=clock) as (url, headers):
        email = listeners.email_listeners(program, url, messages, seed)
        voice = listeners.voice_listeners(program, candidate_store(), url, headers, day, len(messages), seed,
                                          now=clock.datetime())
        if after:
            extra = after(url, headers)
        report.sessions.append((start, start + (time.perf_counter() - began) + 1.0))
    counts = {**email.counts, **voice.counts}
    errors = {**email.errors, **voice.errors}
    line = (f"listeners: of {len(messages):,} delivered, {counts.get('opened', 0):,} opened, "
            f"{counts.get('clicked', 0):,} clicked, {counts.get('submitted', 0):,} answered by email; "
            f"{counts.get('voice_answered', 0):,} answered by voice")
    return [line + (f"; errors: {dict(list(errors.items())[:3])}" if errors else "")] + ([extra] if extra else [])


def _fail(report: DayReport, message: str) -> DayReport:
    report.success, report.failure = False, message
    report.lines.append(f"  error: {message}")
    return report


def funnel_counts(program: Program, report: DayReport) -> dict[str, int]:
    """The day's counts, stage by stage: what the batch kept at each step, then what the channels
    delivered and what listeners did; two runs of the same day on the same data must agree on them."""
    from music_feedback.metrics.compute import funnel
    from music_feedback.resources import feedback_store
    batch = report.batch
    counts = {name: int(batch.meta(asset, "dagster/row_count", 0) or 0) for name, asset in (
        ("extracted", "raw_streams"), ("rejected", "rejected_streams"), ("unified", "unified_candidates"), ("filtered", "filtered_candidates"),
        ("scored", "scored_candidates"), ("stored", "stored_candidates"))} if batch else {}
    table = funnel(program, feedback_store(), report.day)
    for column in ("delivered", "opened", "opened_human", "clicked", "submitted"):
        for channel in table["channel"].unique().sort().to_list():
            rows = table.filter(table["channel"] == channel)
            counts[f"{channel}:{column}"] = int(rows[column].sum())
    ledger = feedback_store().ledger_counts(program.program_id, report.day)
    counts.update({f"ledger:{state}": n for state, n in sorted(ledger.items())})
    return counts


def funnel_table(program: Program, day: str) -> str:
    """The day's funnel by channel and marketplace, rates of delivered."""
    from music_feedback.metrics.compute import funnel
    from music_feedback.resources import feedback_store
    table = funnel(program, feedback_store(), day)
    cols = ("delivered", "opened", "opened_human", "clicked", "submitted")
    lines = [f"  {'channel':<16}{'market':<8}" + "".join(f"{c:>14}" for c in cols)]
    for row in table.iter_rows(named=True):
        cells = [f"{row['delivered']:>14,}"] + [
            f"{row[c]:>7,} {100 * row[c] / row['delivered'] if row['delivered'] else 0:>5.1f}%" for c in cols[1:]]
        lines.append(f"  {row['channel']:<16}{row['marketplace']:<8}" + "".join(cells))
    return "funnel of the day's requests (rates of delivered):\n" + "\n".join(lines)
