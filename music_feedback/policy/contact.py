"""Opt-out, trust (bots, inauthentic and unknown accounts) and the weekly cap are contact policy, not tuning.

The batch's filters apply them, but a filter can be disabled in a program; the policy cannot. It is read
straight from the warehouse here (not from frames the filters loaded), so the blocking guard after the
chain, and the channels at send time, check what is true now.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import polars as pl

from music_feedback.warehouse.port import Warehouse, date_literal

# Filter kinds that carry policy, and what still applies when a program disables one.
POLICY_FILTER_KINDS = {
    "trust": "bots, inauthentic and unknown listeners are still removed",
    "eligibility": "opted-out listeners are still removed",
    "frequency-cap": "the weekly cap still applies",
}
CAP_DAYS = 7


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


def contact_signals(wh: Warehouse, program_id: str, day: date) -> pl.DataFrame:
    """listener_id, opted_out, bot_score, is_authentic, prior_requests (sent in the 7 days ending on `day`)."""
    wh.require("listeners", ["listener_id", "opted_out", "bot_score", "is_authentic"])
    wh.require("feedback_requests", ["program_id", "listener_id", "requested_at"])
    start, end = day - timedelta(days=CAP_DAYS - 1), day + timedelta(days=1)
    return wh.fetch(f"""
        SELECT l.listener_id, l.opted_out, l.bot_score, l.is_authentic,
               COALESCE(r.prior_requests, 0) AS prior_requests
        FROM listeners l
        LEFT JOIN (SELECT listener_id, COUNT(*) AS prior_requests FROM feedback_requests
                   WHERE program_id = '{program_id.replace("'", "''")}'
                     AND requested_at >= {date_literal(start)} AND requested_at < {date_literal(end)}
                   GROUP BY listener_id) r ON r.listener_id = l.listener_id""")


def policy_frame(pairs: pl.DataFrame, signals: pl.DataFrame, extra_requests: pl.DataFrame | None = None
                 ) -> pl.DataFrame:
    """`pairs` (listener_id, track_id) joined to the signals, with the week's request count if all are sent.

    `extra_requests` (listener_id, requests) adds contacts the warehouse does not know yet (today's sends)."""
    out = pairs.select("listener_id", "track_id").join(signals, on="listener_id", how="left")
    if extra_requests is not None:
        out = (out.join(extra_requests.select("listener_id", pl.col("requests").alias("_extra")),
                        on="listener_id", how="left")
               .with_columns((pl.col("prior_requests") + pl.col("_extra").fill_null(0)).alias("prior_requests"))
               .drop("_extra"))
    return out.with_columns((pl.col("prior_requests").fill_null(0) + pl.len().over("listener_id"))
                            .alias("requests_in_week"))


def policy_violations(pairs: pl.DataFrame, signals: pl.DataFrame, policy: ContactPolicy,
                      extra_requests: pl.DataFrame | None = None) -> pl.DataFrame:
    """The pairs that policy forbids contacting, with a reason; empty when all may be contacted."""
    frame = policy_frame(pairs, signals, extra_requests)
    reason = (
        pl.when(pl.col("opted_out").is_null() | pl.col("bot_score").is_null()).then(pl.lit("unknown_listener"))
        .when(pl.col("opted_out")).then(pl.lit("opted_out"))
        .when(pl.col("bot_score") >= policy.max_bot_score).then(pl.lit("bot_activity"))
        .when(~pl.col("is_authentic").fill_null(False)).then(pl.lit("not_authentic"))
        .when(pl.col("requests_in_week") > policy.max_requests_per_week).then(pl.lit("over_weekly_cap"))
    )
    return frame.with_columns(reason.alias("reason")).filter(pl.col("reason").is_not_null())
