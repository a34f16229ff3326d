"""The contact policy: whether listener L may be asked about track T on channel C at time t, and if not,
which rule says no. Every caller asks here: the batch's filters and guard (vectorised), the email sender
at send time, the voice prompt, the answer endpoints and `music-feedback why`.

Opt-out, suppression, trust, the holdout, answered pairs and the weekly cap are policy, not tuning: a
program can disable a filter, never a rule. The cap counts contacts of every channel and every batch,
and the warehouse's earlier requests, in rolling seven-day windows: a contact at t shares a window with
every other contact less than seven days before or after it, so it is allowed only while fewer than the
cap do. Counting the days after t too keeps the cap when days run out of order (a backfill).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

import polars as pl

from music_feedback.warehouse.port import Warehouse
from music_feedback.warehouse.queries import recent_request_counts

# Filter kinds that carry policy, and what still applies when a program disables one.
POLICY_FILTER_KINDS = {
    "trust": "bots, inauthentic and unknown listeners are still removed",
    "eligibility": "opted-out listeners are still removed",
    "frequency-cap": "the weekly cap still applies",
}
CAP_DAYS = 7
CAP_WINDOW_S = CAP_DAYS * 86_400.0

# The rules in the order they are reported: the first that says no is the reason.
REASONS = ("unknown_listener", "opted_out", "unsubscribed", "bot_activity", "not_authentic", "held_out",
           "already_answered", "over_weekly_cap")
REASON_TEXT = {
    "unknown_listener": "the warehouse does not know the listener",
    "opted_out": "the listener opted out in the warehouse",
    "unsubscribed": "the listener unsubscribed (opted out of every program)",
    "bot_activity": "the listener's bot score is at or above the trust threshold",
    "not_authentic": "the account is not authentic",
    "held_out": "the listener is in the measured holdout and is never asked",
    "already_answered": "the listener already answered about this track",
    "over_weekly_cap": "the weekly request cap across all channels is reached",
}


@dataclass(frozen=True)
class ContactPolicy:
    max_bot_score: float = 0.7
    max_requests_per_week: int = 2

    @classmethod
    def of_chain(cls, chain) -> "ContactPolicy":
        """The program's thresholds where its filters set them, the defaults otherwise."""
        params = {f.kind: f.params for f in chain}
        return cls(max_bot_score=params.get("trust", {}).get("maxBotScore", cls.max_bot_score),
                   max_requests_per_week=params.get("frequency-cap", {}).get(
                       "maxRequestsPerWeek", cls.max_requests_per_week))


def cap_window(at: float) -> tuple[float, float]:
    """(since, until), both open: the contacts that share a rolling seven-day window with one at `at`."""
    return at - CAP_WINDOW_S, at + CAP_WINDOW_S


def batch_time(day: date) -> float:
    """When the batch of day D decides: D+1 00:00 UTC, before any of its channels contacts anyone (the
    sender and the voice prompt decide again at their own time)."""
    return datetime.combine(day + timedelta(days=1), time(), timezone.utc).timestamp()


def batch_window(day: date) -> tuple[float, float]:
    """The contacts the batch of day D counts: the seven days before it decides, as of then. A re-run of D
    after its own sends then keeps the candidates its first run kept; the sender and the voice prompt
    still count both sides (cap_window) when they contact."""
    return batch_time(day) - CAP_WINDOW_S, batch_time(day)


def contact_signals(wh: Warehouse, program_id: str, window: tuple[float, float],
                    listener_ids: list[int] | None = None) -> pl.DataFrame:
    """listener_id, opted_out, bot_score, is_authentic, prior_requests (the warehouse's requests inside
    `window`); `listener_ids` narrows it to a few listeners (a voice prompt)."""
    wh.require("listeners", ["listener_id", "opted_out", "bot_score", "is_authentic"])
    who = f" WHERE listener_id IN ({', '.join(str(int(i)) for i in listener_ids)})" if listener_ids else ""
    listeners = wh.fetch(f"SELECT listener_id, opted_out, bot_score, is_authentic FROM listeners{who}")
    requests = recent_request_counts(wh, program_id, *window, listener_ids)
    return (listeners.join(requests, on="listener_id", how="left")
            .with_columns(pl.col("prior_requests").fill_null(0).cast(pl.Int64)))


def policy_frame(pairs: pl.DataFrame, signals: pl.DataFrame, extra_requests: pl.DataFrame | None = None
                 ) -> pl.DataFrame:
    """`pairs` (listener_id, track_id, in the order they would be contacted) joined to the signals, with
    requests_in_week: the listener's contacts in the window plus this pair and those before it in `pairs`.

    `extra_requests` (listener_id, requests) adds the program's own contacts (the delivery ledger)."""
    out = pairs.select("listener_id", "track_id").join(signals, on="listener_id", how="left", maintain_order="left")
    if extra_requests is not None:
        out = (out.join(extra_requests.select("listener_id", pl.col("requests").alias("_extra")),
                        on="listener_id", how="left", maintain_order="left")
               .with_columns((pl.col("prior_requests").fill_null(0) + pl.col("_extra").fill_null(0))
                             .alias("prior_requests"))
               .drop("_extra"))
    position = pl.int_range(1, pl.len() + 1).over("listener_id")
    return out.with_columns((pl.col("prior_requests").fill_null(0) + position).alias("requests_in_week"))


def decide(frame: pl.DataFrame, policy: ContactPolicy) -> pl.DataFrame:
    """A `policy_frame` plus `suppressed`, `held_out` and `answered` booleans -> the same rows with `reason`
    (null: may contact). The one statement of the rules, for one pair or a million."""
    def flag(name: str) -> pl.Expr:
        return pl.col(name).fill_null(False) if name in frame.columns else pl.lit(False)
    reason = (
        pl.when(pl.col("opted_out").is_null() | pl.col("bot_score").is_null()).then(pl.lit("unknown_listener"))
        .when(pl.col("opted_out")).then(pl.lit("opted_out"))
        .when(flag("suppressed")).then(pl.lit("unsubscribed"))
        .when(pl.col("bot_score") >= policy.max_bot_score).then(pl.lit("bot_activity"))
        .when(~pl.col("is_authentic").fill_null(False)).then(pl.lit("not_authentic"))
        .when(flag("held_out")).then(pl.lit("held_out"))
        .when(flag("answered")).then(pl.lit("already_answered"))
        .when(pl.col("requests_in_week") > policy.max_requests_per_week).then(pl.lit("over_weekly_cap"))
    )
    return frame.with_columns(reason.alias("reason"))


def policy_violations(pairs: pl.DataFrame, signals: pl.DataFrame, policy: ContactPolicy,
                      extra_requests: pl.DataFrame | None = None) -> pl.DataFrame:
    """The pairs that policy forbids contacting, with a reason; empty when all may be contacted."""
    decided = decide(policy_frame(pairs, signals, extra_requests), policy)
    return decided.filter(pl.col("reason").is_not_null())
