"""Sending one marketplace's planned email, exactly once.

Each chunk is claimed in the ledger (pending -> sending) before it is sent and settled after it
(sent | failed | back to pending for a retry). A run that finds rows still `sending` was preceded by a
process that died mid-send: the outbox settles them from what it holds (the Maildir can tell; SMTP
cannot, so those few are sent again, with the same Message-ID; SES with an events queue makes them unknown).
Nothing goes out past the lateness window.

A send the service may have taken (a read timeout, a 5xx after the request went) is `unknown`: never sent
again blindly. The service's delivery events settle it (reconcile, at the start of a run and, while any is
left, after its sends): a Send event makes it sent, a Reject failed; one with no event `unknown_grace_s`
after the send was not taken and is due again. Without events (SMTP) it stays unknown: at most once.
"""
from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Callable

import polars as pl

from music_feedback.delivery.email.port import EmailSender
from music_feedback.delivery.email.render import Renderer, message_id
from music_feedback.feedback.port import FeedbackStore
from music_feedback.policy.contact import cap_window
from music_feedback.policy.gate import ContactGate
from music_feedback.programs.model import Program
from music_feedback.store.base import CandidateStore
from music_feedback.warehouse.port import Warehouse


@dataclass
class SendOptions:
    workers: int = 4
    max_attempts: int = 3
    retry_delay_s: float = 2.0  # doubled after each round of retries
    clock: Callable[[], float] = time.time  # epoch seconds; a simulated day passes its own
    # After this long with no event from the service, an unknown send was not taken: due again.
    unknown_grace_s: float = 300.0
    reconcile_wait_s: float = 300.0  # how long a run waits for the events of its unknown sends


@dataclass
class SendReport:
    counts: Counter = field(default_factory=Counter)
    reasons: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    def add(self, state: str, reason: str = "", n: int = 1) -> None:
        self.counts[state] += n
        if reason:
            self.reasons[reason[:120]] += n


class EmailDelivery:
    def __init__(self, program: Program, candidates: CandidateStore, feedback: FeedbackStore, sender: EmailSender,
                 renderer: Renderer, warehouse: Warehouse, options: SendOptions | None = None):
        self.program, self.candidates, self.feedback, self.sender = program, candidates, feedback, sender
        self.renderer, self.warehouse = renderer, warehouse
        self.options = options or SendOptions()
        self.channel = program.channel("email").channel_id
        self.gate = ContactGate(program, warehouse, feedback)

    def run(self, batch_day: date, marketplace: str) -> SendReport:
        started, report = time.perf_counter(), SendReport()
        day = batch_day.isoformat()
        self._settle_in_flight(day, marketplace, report)
        self._reconcile(day, report, 0.0)
        self._send_rounds(batch_day, marketplace, report)
        if self.sender.reports_events() and not self.feedback.unknown(
                self.program.program_id, day, self.channel).is_empty():
            self._reconcile(day, report, self.options.reconcile_wait_s)
            self._send_rounds(batch_day, marketplace, report)  # those not taken, once more
        self._give_up(day, marketplace, report)
        left = self.feedback.unknown(self.program.program_id, day, self.channel)
        report.counts["unknown"] = left.filter(pl.col("marketplace") == marketplace).height
        report.seconds = time.perf_counter() - started
        return report

    def _send_rounds(self, batch_day: date, marketplace: str, report: SendReport) -> None:
        day = batch_day.isoformat()
        for attempt in range(self.options.max_attempts):
            due = self.feedback.due(self.program.program_id, day, self.channel, marketplace)
            due = due.filter(pl.col("attempts") < self.options.max_attempts)
            if due.is_empty():
                break
            if attempt:
                time.sleep(min(self.options.retry_delay_s * 2 ** (attempt - 1),
                               max(due["send_before"].min() - self.options.clock(), 0)))
            due = self._drop_late(day, due, report)
            due = self._drop_forbidden(batch_day, due, report)
            self._send_all(day, due, report)

    def _reconcile(self, day: str, report: SendReport, wait_s: float) -> None:
        """Unknown sends of the day (every marketplace) settled from the service's delivery events."""
        pid = self.program.program_id
        unknown = self.feedback.unknown(pid, day, self.channel)
        if unknown.is_empty() or not self.sender.reports_events():
            return
        ids = {self._mid(day, r): r for r in unknown.iter_rows(named=True)}
        everyone = self.feedback.ledger_frame(pid, day).filter(pl.col("channel") == self.channel)
        known = {self._mid(day, r) for r in everyone.iter_rows(named=True)}  # their events can go
        heard = self.sender.events(known, wait_for=ids, wait_s=wait_s) or {}
        now, grace = self.options.clock(), self.options.unknown_grace_s
        outcomes = []
        for mid, row in ids.items():
            key = (row["listener_id"], row["track_id"])
            if mid in heard:
                outcomes.append((key, *heard[mid]))
            elif now - (row["updated_at"] or 0.0) >= grace:
                outcomes.append((key, "pending", f"no event from the service {grace:.0f}s after an unknown send: "
                                                 "not taken"))
        if outcomes:
            self.feedback.resolve(pid, day, self.channel, outcomes, now)
            self._mark_candidates(day, [k for k, state, _ in outcomes if state == "sent"])
            for state, name in (("sent", "reconciled_sent"), ("failed", "reconciled_failed"),
                                ("pending", "reconciled_resend")):
                report.add(name, n=sum(1 for _, st, _ in outcomes if st == state))

    def _settle_in_flight(self, day: str, marketplace: str, report: SendReport) -> None:
        stuck = self.feedback.due(self.program.program_id, day, self.channel, marketplace).filter(
            pl.col("state") == "sending")
        if stuck.is_empty():
            return
        ids = {self._mid(day, r): (r["listener_id"], r["track_id"]) for r in stuck.iter_rows(named=True)}
        held = self.sender.delivered(list(ids))
        now = self.options.clock()
        if held is None and self.sender.reports_events():  # its events will tell: unknown, reconciled below
            self.feedback.settle(self.program.program_id, day, self.channel, [
                (key, "unknown", "in flight when a run died", mid) for mid, key in ids.items()], now)
            report.add("recovered_unknown", n=len(ids))
            return
        held = held or set()
        outcomes = [(key, "sent" if mid in held else "pending", "" if mid in held else "in flight when a run died",
                     mid) for mid, key in ids.items()]
        self.feedback.settle(self.program.program_id, day, self.channel, outcomes, now)
        self._mark_candidates(day, [k for mid, k in ids.items() if mid in held])
        report.add("recovered_sent", n=len(held & ids.keys()))
        report.add("recovered_resend", n=len(ids.keys() - held))

    def _drop_late(self, day: str, due: pl.DataFrame, report: SendReport) -> pl.DataFrame:
        now = self.options.clock()
        late = due.filter(pl.col("send_before") <= now)
        if late.height:
            reason = "past the maximum lateness: not sent"
            self.feedback.expire(self.program.program_id, day, self.channel, late.select("listener_id", "track_id")
                                 .iter_rows(), reason, now)
            report.add("expired", reason, late.height)
        return due.filter(pl.col("send_before") > now)

    def _drop_forbidden(self, batch_day: date, due: pl.DataFrame, report: SendReport) -> pl.DataFrame:
        """The contact policy asked again now, best first: a listener may have unsubscribed, answered, or
        been asked on another channel since the batch ran."""
        if due.is_empty():
            return due
        now = self.options.clock()
        ordered = due.sort(["score", "listener_id", "track_id"], descending=[True, False, False])
        decided = self.gate.check(ordered.select("listener_id", "track_id"), self.channel, now)
        blocked = decided.filter(pl.col("reason").is_not_null()).select("listener_id", "track_id", "reason")
        for reason, keys in blocked.group_by("reason"):
            self.feedback.expire(self.program.program_id, batch_day.isoformat(), self.channel,
                                 keys.select("listener_id", "track_id").iter_rows(), f"at send time: {reason[0]}",
                                 now, state="cancelled")
            report.add("cancelled", f"at send time: {reason[0]}", keys.height)
        # A listener's room for ledger contacts under the cap, for the count each chunk makes after its claim.
        room = self.gate.policy.max_requests_per_week - decided["warehouse_requests"].fill_null(0)
        return (ordered.with_columns(room.alias("cap_room"))
                .join(blocked, on=["listener_id", "track_id"], how="anti", maintain_order="left"))

    def _send_all(self, day: str, due: pl.DataFrame, report: SendReport) -> None:
        rows = due.to_dicts()
        size = self.sender.batch_size
        chunks = [rows[i:i + size] for i in range(0, len(rows), size)]
        with ThreadPoolExecutor(max_workers=self.options.workers) as pool:
            for outcome in pool.map(lambda chunk: self._send_chunk(day, chunk), chunks):
                for state, reason in outcome:
                    report.add(state, reason if state != "sent" else "")

    def _send_chunk(self, day: str, chunk: list[dict]) -> list[tuple[str, str]]:
        pid = self.program.program_id
        claimed = set(self.feedback.claim(pid, day, self.channel, [(r["listener_id"], r["track_id"]) for r in chunk],
                                          self.options.clock()))
        rows = [r for r in chunk if (r["listener_id"], r["track_id"]) in claimed]
        rows, cancelled = self._within_cap(day, rows)
        if not rows:
            return cancelled
        sent_at, settings = self.options.clock(), self.program.feedback
        expires = int(sent_at + timedelta(days=settings.link_ttl_days).total_seconds())
        # The unsubscribe link works for as long as the mail may be read: its own, longer expiry.
        unsubscribe_expires = int(sent_at + timedelta(days=settings.unsubscribe_ttl_days).total_seconds())
        messages = [self.renderer.message(r, day, self.channel, expires, unsubscribe_expires) for r in rows]
        results = self.sender.send(messages)
        outcomes = []
        for row, result in zip(rows, results):
            state = {"sent": "sent", "failed": "failed", "retry": "pending", "unknown": "unknown"}[result.status]
            outcomes.append(((row["listener_id"], row["track_id"]), state, result.reason, result.message_id))
        self.feedback.settle(pid, day, self.channel, outcomes, self.options.clock())
        self._mark_candidates(day, [key for key, state, _, _ in outcomes if state == "sent"])
        return cancelled + [("retried" if state == "pending" else "sent_unknown" if state == "unknown" else state,
                             reason) for _, state, reason, _ in outcomes]

    def _within_cap(self, day: str, rows: list[dict]) -> tuple[list[dict], list[tuple[str, str]]]:
        """The claimed rows counted again against the weekly cap, now that the claim is in the ledger: a
        voice prompt may have contacted a listener since the run asked the policy. Whichever wrote second
        sees the other (the prompt counts this claim), so an excess here is this chunk's to cancel, its
        lowest scores first. -> (rows to send, report entries for the cancelled)."""
        if not rows:
            return rows, []
        now = self.options.clock()
        counts = self.feedback.contacts_among(self.program.program_id, [r["listener_id"] for r in rows],
                                              *cap_window(now))
        excess = {lid: n - room for lid, n, room in ((r["listener_id"], counts.get(r["listener_id"], 0),
                                                      r["cap_room"]) for r in rows) if n > room}
        if not excess:
            return rows, []
        cancel = set()
        for r in reversed(rows):  # rows come best first
            if excess.get(r["listener_id"], 0) > 0:
                cancel.add((r["listener_id"], r["track_id"]))
                excess[r["listener_id"]] -= 1
        reason = "at send time: over_weekly_cap"
        self.feedback.expire(self.program.program_id, day, self.channel, cancel, reason, now, state="cancelled")
        return ([r for r in rows if (r["listener_id"], r["track_id"]) not in cancel],
                [("cancelled", reason)] * len(cancel))

    def _mark_candidates(self, day: str, keys: list[tuple[int, int]]) -> None:
        if keys:
            self.candidates.set_status(self.program.program_id, day, [(lid, tid, self.channel) for lid, tid in keys],
                                       "sent")

    def _give_up(self, day: str, marketplace: str, report: SendReport) -> None:
        """Rows still pending after the last attempt failed for good: record the last reason."""
        left = self.feedback.due(self.program.program_id, day, self.channel, marketplace).filter(
            pl.col("state") == "pending")
        if left.height:
            ledger = [self.feedback.ledger_row(self.program.program_id, day, r["listener_id"], r["track_id"],
                                               self.channel) for r in left.iter_rows(named=True)]
            for row in ledger:
                reason = f"gave up after {row['attempts']} attempt(s): {row['reason'] or 'not sent'}"
                self.feedback.expire(self.program.program_id, day, self.channel, [(row["listener_id"],
                                     row["track_id"])], reason, self.options.clock(), state="failed")
                report.add("failed", reason)

    def _mid(self, day: str, row: dict) -> str:
        return message_id(self.program.program_id, day, row["listener_id"], row["track_id"], self.channel,
                          self.renderer.domain)
