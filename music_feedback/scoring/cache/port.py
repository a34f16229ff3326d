"""The score cache port. A key is (program, listener, track, model versions, feature fingerprint): a score
is a function of the model and the row's feature values, so a new champion or a day whose features differ
(a re-run of an older day after a newer one) misses instead of reusing another day's score."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import polars as pl
from dagster import ConfigurableResource
from pydantic import Field

from music_feedback.scoring.cache.fingerprint import COLUMN as FINGERPRINT

PAIR = ("listener_id", "track_id")
KEY = (*PAIR, FINGERPRINT)
SCORES = ("propensity_score", "affinity_score")
SCHEMA = {"listener_id": pl.Int64, "track_id": pl.Int64, FINGERPRINT: pl.UInt64,
          "propensity_score": pl.Float64, "affinity_score": pl.Float64}


def versions_key(propensity_version: str, affinity_version: str) -> str:
    return f"{propensity_version}|{affinity_version}"


def epoch(moment: datetime) -> int:
    return int(moment.astimezone(timezone.utc).timestamp())


class ScoreCache(ConfigurableResource):
    ttl_days: int = Field(default=14, description=(
        'Days a cached score is reused before the model scores the row again.'))

    def lookup(self, program_id: str, versions: str, pairs: pl.DataFrame, now: datetime) -> pl.DataFrame:
        """The unexpired cached scores of `pairs` (listener_id, track_id, feature_fingerprint): one row
        (SCHEMA) per hit."""
        raise NotImplementedError

    def store(self, program_id: str, versions: str, scores: pl.DataFrame, now: datetime) -> int:
        """Cache listener_id, track_id, feature_fingerprint, propensity_score, affinity_score until
        now + ttl_days."""
        raise NotImplementedError

    def purge_expired(self, now: datetime) -> int:
        raise NotImplementedError

    def expires_at(self, now: datetime) -> int:
        return epoch(now + timedelta(days=self.ttl_days))

    @staticmethod
    def empty() -> pl.DataFrame:
        return pl.DataFrame(schema=SCHEMA)
