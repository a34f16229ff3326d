"""The program's own history, which the warehouse does not hold yet: what was sent and answered, and who
unsubscribed. The next batch reads it, so the weekly cap counts every channel's contacts and answered
pairs are not asked again."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import polars as pl

from music_feedback.feedback.port import FeedbackStore
from music_feedback.policy.contact import batch_window


@dataclass(frozen=True)
class OwnHistory:
    contacts: pl.DataFrame  # listener_id, requests
    answered: pl.DataFrame  # listener_id, track_id
    suppressed: set[int]


def own_history(feedback: FeedbackStore, program_id: str, day: date) -> OwnHistory:
    """Contacts of every channel and answers as of the batch's decision time (batch_window), so a re-run
    of D gives what its first run gave; opt-outs whenever they came: nobody unsubscribed is stored again."""
    since, until = batch_window(day)
    return OwnHistory(feedback.contacts(program_id, since, until), feedback.answered_pairs(program_id, until),
                      feedback.suppressed())


def add_contacts(prior: pl.DataFrame, contacts: pl.DataFrame) -> pl.DataFrame:
    """listener_id, prior_requests: the warehouse's counts plus the ledger's."""
    prior = prior.select("listener_id", pl.col("prior_requests").cast(pl.Int64))
    if contacts.height == 0:  # the warehouse's counts are already one row per listener: no regrouping
        return prior
    extra = contacts.select("listener_id", pl.col("requests").cast(pl.Int64).alias("prior_requests"))
    return pl.concat([prior, extra]).group_by("listener_id").agg(pl.col("prior_requests").sum())


def with_suppressions(listeners: pl.DataFrame, suppressed: set[int]) -> pl.DataFrame:
    """An unsubscribed listener counts as opted out, whatever the warehouse says."""
    if not suppressed:
        return listeners
    return listeners.with_columns(
        (pl.col("opted_out") | pl.col("listener_id").is_in(list(suppressed))).alias("opted_out"))
