"""Engagement business rule: ask only listeners engaged enough to answer."""
from __future__ import annotations

import polars as pl

from music_feedback.filters.base import CandidateFilter, FilterContext
from music_feedback.filters.sql import literal


class EngagementFilter(CandidateFilter):
    kind = "engagement"
    # The listener's score (listeners.engagement_score), the one scoring reads; not the play row's copy.
    reads = ()
    defaults = {"minEngagementScore": 0.6}
    codes = ("low_engagement",)

    def validate_params(self) -> None:
        self._number("minEngagementScore", 0.0, 1.0)

    def reasons(self, candidates: pl.DataFrame, ctx: FilterContext) -> pl.DataFrame:
        joined = ctx.attach(candidates, "listeners", {"_listener_engagement": "engagement_score"})
        low = pl.col("_listener_engagement").fill_null(-1.0) < self.params["minEngagementScore"]  # unknown: removed
        return joined.with_columns(pl.when(low).then(self.code("low_engagement")).alias("reason")).drop(
            "_listener_engagement")

    def sql(self, chain, rank=None) -> str:
        least = literal(self.params["minEngagementScore"], "minEngagementScore")
        return f"CASE WHEN COALESCE(listener_engagement, -1.0) < {least} THEN {self.sql_code('low_engagement')} END"
