"""Engagement business rule: ask only listeners engaged enough to answer."""
from __future__ import annotations

import polars as pl

from music_feedback.filters.base import CandidateFilter, FilterContext


class EngagementFilter(CandidateFilter):
    kind = "engagement"
    reads = ("engagement_score",)
    defaults = {"minEngagementScore": 0.6}

    def validate_params(self) -> None:
        self._number("minEngagementScore", 0.0, 1.0)

    def reasons(self, candidates: pl.DataFrame, ctx: FilterContext) -> pl.DataFrame:
        low = pl.col("engagement_score").fill_null(-1.0) < self.params["minEngagementScore"]  # unknown is not engaged
        return candidates.with_columns(pl.when(low).then(pl.lit("low_engagement")).alias("reason"))
