"""Candidate store port: where a daily batch leaves scored candidates for channels to read.

Adapters (SQLite now, DynamoDB later) must pass the same contract suite
(music_feedback_tests/test_candidate_store.py), so shared rules live here.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Iterable

import orjson
import polars as pl
from dagster import ConfigurableResource

# Input columns and their dtypes; every one is required. No features: no channel reads them, and the
# retraining reads those logged in scored_candidates (they were 60% of a stored row's bytes).
CANDIDATE_SCHEMA: dict[str, pl.DataType] = {
    "listener_id": pl.Int64,
    "track_id": pl.Int64,
    "channel": pl.Utf8,
    "score": pl.Float64,
    "propensity_score": pl.Float64,
    "affinity_score": pl.Float64,
    "marketplace": pl.Utf8,
    "genre": pl.Utf8,
    "time_zone": pl.Utf8,
    "track_name": pl.Utf8,
    "artist_id": pl.Int64,
    "propensity_model_version": pl.Utf8,
    "affinity_model_version": pl.Utf8,
    "expires_at": pl.Int64,
}
CANDIDATE_COLUMNS = tuple(CANDIDATE_SCHEMA)
# Unique within one (program_id, batch_date); with them it forms the stored key.
ROW_KEY = ("listener_id", "track_id", "channel")
DEFAULT_STATUS = "pending"
# A candidate's delivery state: channels read pending ones; delivery moves them on.
STATUSES = ("pending", "sending", "sent", "failed", "consumed", "cancelled")
# What the serving API returns of a row.
SERVING_COLUMNS = ("listener_id", "track_id", "channel", "score", "propensity_score", "affinity_score",
                   "marketplace", "genre", "time_zone", "track_name", "artist_id", "propensity_model_version",
                   "affinity_model_version", "expires_at")
# Position of a row in a channel's order: score descending, then listener, track, batch date ascending.
PageKey = tuple[float, int, int, str]


def serving_item(row: dict) -> dict:
    """What the serving API returns for a row."""
    return {**{c: row[c] for c in SERVING_COLUMNS}, "batch_date": row["batch_date"], "status": row["status"]}


def page_key(row: dict) -> PageKey:
    return (row["score"], row["listener_id"], row["track_id"], row["batch_date"])


def order_key(key: PageKey) -> tuple:
    """Sortable form of a PageKey: ascending order of this tuple is the channel's order."""
    return (-key[0], key[1], key[2], key[3])


@dataclass(frozen=True)
class ChannelQuery:
    """GetCandidatesForChannel: unexpired candidates of a channel with score >= min_score (optionally
    of one marketplace), in channel order, at most max_per_track per track (the best ones)."""
    program_id: str
    channel: str
    min_score: float = 0.0
    marketplace: str | None = None
    max_per_track: int | None = None
    status: str | None = DEFAULT_STATUS  # None: any status
    batch_date: str | None = None  # None: every live batch; a date: that day's batch only (a channel's day)


def epoch_now(now: datetime | None = None) -> float:
    """Epoch seconds for `now` (default: current UTC); naive datetimes count as UTC."""
    if now is None:
        now = datetime.now(timezone.utc)
    elif now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    return now.timestamp()


def validate_candidates(candidates: pl.DataFrame) -> pl.DataFrame:
    """Check and cast an input frame before anything is written, so bad input writes nothing."""
    missing = [c for c in CANDIDATE_COLUMNS if c not in candidates.columns]
    if missing:
        raise ValueError(f"candidates frame is missing column(s): {', '.join(missing)}")
    try:
        df = candidates.select(pl.col(c).cast(t, strict=True) for c, t in CANDIDATE_SCHEMA.items())
    except pl.exceptions.PolarsError as exc:
        raise ValueError(f"candidates frame has a column of the wrong type: {exc}") from exc
    bad = df.filter(~pl.col("score").is_between(0.0, 1.0) | pl.col("score").is_null())
    if bad.height:
        raise ValueError(f"{bad.height} candidate score(s) outside [0, 1], e.g. {bad['score'][0]}")
    for c in (*ROW_KEY, "expires_at"):
        if df[c].null_count():
            raise ValueError(f"candidates column {c!r} has nulls")
    if df.select(pl.struct(list(ROW_KEY)).is_duplicated().any()).item():
        raise ValueError(f"candidates frame has duplicate {ROW_KEY} rows")
    return df


class CandidateStore(ConfigurableResource):
    """Port for the candidate store. Every read hides rows with expires_at <= now, because
    a backend's TTL delete may lag (DynamoDB's does); `now` defaults to current UTC time.
    Returned dicts hold CANDIDATE_COLUMNS plus program_id, batch_date and status."""

    @property
    def reads_block(self) -> bool:
        """True if reads wait on the network (the service then runs them on its thread pool);
        an embedded store's reads take a millisecond or so and run inline."""
        return True

    @abc.abstractmethod
    def put_batch(self, program_id: str, batch_date: str, candidates: pl.DataFrame) -> int:
        """Atomically replace all rows of (program_id, batch_date) with `candidates`; idempotent.
        Returns rows written. Raises ValueError (writing nothing) on bad input."""

    def put_batch_chunks(self, program_id: str, batch_date: str,
                         chunks: Callable[[], Iterable[pl.DataFrame]]) -> int:
        """put_batch of the rows of every frame `chunks()` yields, one after another, so an adapter can write
        a day larger than memory a chunk at a time; as atomic and idempotent as put_batch (bad input in any
        chunk writes nothing). An adapter may call `chunks` more than once (each call yields the same rows).
        This default concatenates them (memory: the whole day) and calls put_batch."""
        frames = list(chunks())
        whole = (pl.concat(frames, how="vertical_relaxed") if frames else pl.DataFrame(schema=CANDIDATE_SCHEMA))
        return self.put_batch(program_id, batch_date, whole)

    @abc.abstractmethod
    def for_listener(self, program_id: str, listener_id: int, now: datetime | None = None) -> list[dict]:
        """A listener's candidates: batch_date desc, score desc, track_id, channel."""

    @abc.abstractmethod
    def for_channel(
        self,
        program_id: str,
        channel: str,
        min_score: float = 0.0,
        limit: int = 100_000,
        marketplace: str | None = None,
        max_per_track: int | None = None,
        now: datetime | None = None,
    ) -> list[dict]:
        """Best candidates for a channel: score desc, then listener_id, track_id; score >= min_score;
        at most max_per_track per track_id (the best ones) if given; at most `limit` rows."""

    @abc.abstractmethod
    def for_track(
        self, program_id: str, track_id: int, batch_date: str, now: datetime | None = None
    ) -> list[dict]:
        """A track's candidates in one batch: score desc, listener_id, channel."""

    @abc.abstractmethod
    def count(self, program_id: str, batch_date: str | None = None, now: datetime | None = None) -> int:
        """Unexpired rows of a program (optionally of one batch_date)."""

    @abc.abstractmethod
    def track_cutoffs(self, query: ChannelQuery, now: datetime | None = None) -> dict[int, PageKey]:
        """For each track with more than query.max_per_track matching rows, the key of its last row
        within the cap; {} without a cap. The cap ranks a track's unexpired rows whatever their status
        (a row sent earlier still uses its track's share, so re-reading never sends more than the cap),
        and is computed once per query and passed to every page, so pages agree on it."""

    @abc.abstractmethod
    def channel_page(self, query: ChannelQuery, after: PageKey | None, size: int,
                     cutoffs: dict[int, PageKey], now: datetime | None = None) -> list[dict]:
        """The next `size` rows of the query strictly after `after` (None: from the start), leaving out
        rows of a track in `cutoffs` that come after its cutoff. Rows hold SERVING_COLUMNS, program_id,
        batch_date and status."""

    def channel_page_json(self, query: ChannelQuery, after: PageKey | None, size: int,
                          cutoffs: dict[int, PageKey], now: datetime | None = None) -> tuple[list[bytes], PageKey | None]:
        """channel_page's rows as serving_item JSON objects, and the last row's key. An adapter may
        override it to serialise in the database (a page is 1,000 rows)."""
        rows = self.channel_page(query, after, size, cutoffs, now)
        return [orjson.dumps(serving_item(r)) for r in rows], (page_key(rows[-1]) if rows else None)

    @abc.abstractmethod
    def set_status(self, program_id: str, batch_date: str, keys: Iterable[tuple[int, int, str]], status: str,
                   expected: str | None = None) -> int:
        """Move rows (listener_id, track_id, channel) of one batch to `status` (one of STATUSES); with
        `expected`, only rows currently in that status (a compare-and-set, for exactly-once delivery).
        Returns how many rows changed."""

    def ping(self) -> None:
        """Raise if the backend does not answer (the service's readiness check)."""
        self.count("__ping__")

    @abc.abstractmethod
    def purge_expired(self, now: datetime | None = None) -> int:
        """Delete expired rows of every program; returns how many were deleted."""
