"""The feedback store port. Adapters: SQLite (embedded); every adapter passes
music_feedback_tests/test_feedback_store.py.

The delivery ledger is keyed by (program, batch date, listener, track, channel). Its states:
pending -> sending -> sent | failed | expired | unknown, plus held_out (never sent: the measured holdout) and
cancelled (answered on another channel first). A request is written before it is sent and after.
unknown: the service may or may not have taken it (a read timeout or a 5xx after the request went); the
service's delivery events settle it later (unknown -> sent | failed | pending), never a blind re-send.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Iterable

import polars as pl
from dagster import ConfigurableResource

LEDGER_STATES = ("pending", "held_out", "sending", "sent", "failed", "expired", "cancelled", "unknown")
# Contacts that count against the weekly cap: everything that was, or may have been, delivered.
CONTACTED = ("sending", "sent", "unknown")
LEDGER_SCHEMA = {
    "batch_date": pl.Utf8, "listener_id": pl.Int64, "track_id": pl.Int64, "channel": pl.Utf8,
    "state": pl.Utf8, "campaign": pl.Utf8, "marketplace": pl.Utf8, "genre": pl.Utf8, "track_name": pl.Utf8,
    "artist_id": pl.Int64, "score": pl.Float64, "send_at": pl.Float64, "send_before": pl.Float64,
}
LedgerKey = tuple[int, int]  # (listener_id, track_id) within one (program, batch date, channel)
Cap = tuple[int, float, float]  # (limit, since, until): at most `limit` contacts in [since, until)


SETTLED = ("sent", "failed", "expired", "pending", "unknown")
RESOLVED = ("sent", "failed", "pending")  # what an unknown request becomes once the service's events tell


def check_planned(rows: pl.DataFrame) -> pl.DataFrame:
    """Ledger rows cast to LEDGER_SCHEMA; only pending or held_out rows may be planned."""
    df = rows.select(pl.col(c).cast(t) for c, t in LEDGER_SCHEMA.items())
    bad = set(df["state"].unique()) - {"pending", "held_out"}
    if bad:
        raise ValueError(f"planned ledger rows must be pending or held_out, got {sorted(bad)}")
    return df


def check_settled(outcomes: Iterable[tuple[LedgerKey, str, str, str | None]]) -> list:
    outcomes = list(outcomes)
    for _, state, _, _ in outcomes:
        if state not in SETTLED:
            raise ValueError(f"a send settles as sent, failed, expired, pending or unknown, not {state!r}")
    return outcomes


def check_resolved(outcomes: Iterable[tuple[LedgerKey, str, str]]) -> list:
    outcomes = list(outcomes)
    for _, state, _ in outcomes:
        if state not in RESOLVED:
            raise ValueError(f"an unknown request resolves as sent, failed or pending, not {state!r}")
    return outcomes


class OptedOutError(ValueError):
    """The listener opted out: nothing of theirs is stored or sent."""


class SubmissionConflict(ValueError):
    """A submission id was reused with a different answer."""


@dataclass(frozen=True)
class Submission:
    program_id: str
    listener_id: int
    track_id: int
    rating: int  # +1 thumbs up, -1 thumbs down
    channel: str
    batch_date: str
    submission_id: str
    submitted_at: float
    comment: str = ""
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class SubmitResult:
    outcome: str  # created | updated | unchanged (an idempotent retry)
    feedback: dict = field(default_factory=dict)


class FeedbackStore(ConfigurableResource):

    # --- the delivery ledger -------------------------------------------------------------------
    @abc.abstractmethod
    def plan(self, program_id: str, rows: pl.DataFrame) -> int:
        """Add ledger rows (LEDGER_SCHEMA; state pending or held_out) that are not there yet; a row already
        planned keeps its state, so re-planning a day never resends. Returns rows added."""

    @abc.abstractmethod
    def due(self, program_id: str, batch_date: str, channel: str, marketplace: str | None = None
            ) -> pl.DataFrame:
        """Rows still to settle: pending, or sending (in flight when a process died). LEDGER_SCHEMA plus
        attempts and message_id."""

    @abc.abstractmethod
    def claim(self, program_id: str, batch_date: str, channel: str, keys: Iterable[LedgerKey], now: float
              ) -> list[LedgerKey]:
        """pending -> sending (a compare-and-set), counting an attempt; returns the keys this call moved."""

    @abc.abstractmethod
    def settle(self, program_id: str, batch_date: str, channel: str,
               outcomes: Iterable[tuple[LedgerKey, str, str, str | None]], now: float) -> int:
        """(key, state, reason, message_id): sending -> sent | failed | expired | pending (retry later) |
        unknown (the service may have taken it: still a contact, settled later by `resolve`)."""

    @abc.abstractmethod
    def unknown(self, program_id: str, batch_date: str, channel: str) -> pl.DataFrame:
        """Requests in state unknown: listener_id, track_id, marketplace, message_id, updated_at."""

    @abc.abstractmethod
    def resolve(self, program_id: str, batch_date: str, channel: str,
                outcomes: Iterable[tuple[LedgerKey, str, str]], now: float) -> int:
        """(key, state, reason): unknown -> sent (the service took it) | failed (it refused it) | pending
        (it did not take it: due again, no longer a contact). Returns the rows moved."""

    @abc.abstractmethod
    def expire(self, program_id: str, batch_date: str, channel: str, keys: Iterable[LedgerKey], reason: str,
               now: float, state: str = "expired") -> int:
        """pending or sending -> `state` (expired: too late; cancelled: policy said no at send time; failed:
        attempts used up), with the reason."""

    @abc.abstractmethod
    def record_contact(self, program_id: str, batch_date: str, channel: str, row: dict, state: str,
                       now: float, cap: Cap | None = None) -> str | None:
        """A contact decided and made at once (a voice prompt): insert the row in `state` (sent or
        held_out) unless it exists; returns the row's state. With `cap` (limit, since, until) a new row
        is inserted only while the listener has fewer than `limit` contacts in [since, until), counted
        in the same atomic write (None: refused), so two prompts at once cannot both take the last one."""

    @abc.abstractmethod
    def contacts(self, program_id: str, since: float, until: float) -> pl.DataFrame:
        """listener_id, requests: contacts (sending or sent) made in [since, until), every channel."""

    @abc.abstractmethod
    def contacts_of(self, program_id: str, listener_id: int, since: float, until: float) -> int:
        """Contacts of one listener in [since, until) (the voice API asks this per prompt)."""

    def contacts_among(self, program_id: str, listener_ids: Iterable[int], since: float, until: float
                       ) -> dict[int, int]:
        """Contacts of each of a few listeners in [since, until) (a send chunk counts again after its claim)."""
        return {lid: self.contacts_of(program_id, lid, since, until) for lid in set(listener_ids)}

    @abc.abstractmethod
    def ledger_counts(self, program_id: str, batch_date: str | None = None, channel: str | None = None
                      ) -> dict[str, int]:
        """Rows by state."""

    @abc.abstractmethod
    def ledger_frame(self, program_id: str, batch_date: str) -> pl.DataFrame:
        """A batch day's ledger: listener_id, track_id, channel, marketplace, genre, state, score."""

    @abc.abstractmethod
    def ledger_row(self, program_id: str, batch_date: str, listener_id: int, track_id: int, channel: str
                   ) -> dict | None:
        ...

    # --- answers -------------------------------------------------------------------------------
    @abc.abstractmethod
    def submit(self, sub: Submission) -> SubmitResult:
        """In one transaction: refuse an opted-out listener (OptedOutError); treat a known submission id as a
        retry (unchanged) or a conflict (SubmissionConflict); upsert the one answer per (program, listener,
        track); add a feedback event to the outbox; update the track's metrics; mark the ledger row
        answered and cancel the pair's pending requests on other channels."""

    @abc.abstractmethod
    def feedback(self, program_id: str, listener_id: int, track_id: int) -> dict | None:
        ...

    @abc.abstractmethod
    def answered_pairs(self, program_id: str, until: float) -> pl.DataFrame:
        """listener_id, track_id answered before `until` (tomorrow's batch leaves them out)."""

    @abc.abstractmethod
    def answers(self, program_id: str, until: float) -> pl.DataFrame:
        """Every answer submitted before `until`: listener_id, track_id, rating, submitted_at, channel,
        batch_date, marketplace, genre, track_name (the last three from the request that was answered)."""

    @abc.abstractmethod
    def track_metrics(self, program_id: str, track_id: int) -> dict:
        """thumbs_up, thumbs_down, responses."""

    # --- opt-out and suppression ---------------------------------------------------------------
    @abc.abstractmethod
    def opt_out(self, listener_id: int, reason: str, now: float) -> bool:
        """Suppress a listener for every program; True if newly suppressed."""

    @abc.abstractmethod
    def suppressed(self, listener_ids: Iterable[int] | None = None) -> set[int]:
        """Which of these listeners (all, if None) are suppressed."""

    # --- events --------------------------------------------------------------------------------
    @abc.abstractmethod
    def record_event(self, program_id: str, kind: str, detail: dict, now: float) -> None:
        """An event for the outbox (open, click, unsubscribe ...), published by the event relay."""

    @abc.abstractmethod
    def unpublished_events(self, limit: int = 500) -> list[dict]:
        """Outbox rows not yet published, oldest first: id, program_id, kind, detail, created_at."""

    @abc.abstractmethod
    def mark_published(self, ids: Iterable[int], now: float) -> int:
        ...

    @abc.abstractmethod
    def events_since(self, program_id: str, kind_prefix: str, after_id: int) -> tuple[int, int]:
        """(how many events of kinds starting with `kind_prefix` came after `after_id`, the newest id)."""

    @abc.abstractmethod
    def events(self, program_id: str, kind: str | None = None, since: float | None = None) -> list[dict]:
        """The events of a program (optionally of one kind) made at or after `since` (epoch seconds; None:
        all it keeps), oldest first. Give `since`: on DynamoDB it bounds the days read."""
