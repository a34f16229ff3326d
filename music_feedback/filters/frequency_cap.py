"""Frequency cap business rule: at most N requests per listener per week, counting those already sent.

A listener with room for k more requests keeps their k strongest candidates of the day (most plays,
then highest completion, then latest play, then track id, so the choice is deterministic).
"""
from __future__ import annotations

import polars as pl

from music_feedback.filters.base import CandidateFilter, FilterContext
from music_feedback.filters.sql import literal


class FrequencyCapFilter(CandidateFilter):
    kind = "frequency-cap"
    reads = ("play_count", "completion_rate", "last_played_at")
    defaults = {"maxRequestsPerWeek": 2}
    codes = ("weekly_cap_reached", "over_weekly_cap")

    def validate_params(self) -> None:
        self._number("maxRequestsPerWeek", 0, 1000, integer=True)

    def reasons(self, candidates: pl.DataFrame, ctx: FilterContext) -> pl.DataFrame:
        cap = self.params["maxRequestsPerWeek"]
        ranked = (
            ctx.attach(candidates, "recent_requests", ["prior_requests"])
            .with_columns(pl.col("prior_requests").fill_null(0).cast(pl.Int64))
            .sort(["listener_id", "play_count", "completion_rate", "last_played_at", "track_id"],
                  descending=[False, True, True, True, False])
            .with_columns((pl.col("prior_requests") + _position_in_run("listener_id")).alias("requests_this_week"))
        )
        reason = (
            pl.when(pl.col("prior_requests") >= cap).then(self.code("weekly_cap_reached"))
            .when(pl.col("requests_this_week") > cap).then(self.code("over_weekly_cap"))
        )
        return ranked.with_columns(reason.alias("reason"))

    ranks = True

    def rank_order(self) -> str:  # as the sort above: polars puts nulls first
        return ("play_count DESC NULLS FIRST, completion_rate DESC NULLS FIRST, last_played_at DESC NULLS FIRST, "
                "track_id ASC NULLS FIRST")

    def sql(self, chain, rank=None) -> str:
        cap = literal(self.params["maxRequestsPerWeek"], "maxRequestsPerWeek")
        return (f"CASE WHEN prior_requests >= {cap} THEN {self.sql_code('weekly_cap_reached')} "
                f"WHEN prior_requests + {rank} > {cap} THEN {self.sql_code('over_weekly_cap')} END")


def _position_in_run(column: str) -> pl.Expr:
    """1, 2, ... along each run of equal `column` values: on a frame sorted by it, the rank within the
    group, without hashing it as `int_range().over()` does (~5 ms against ~0.13 s for 560K rows)."""
    index = pl.int_range(pl.len(), dtype=pl.Int64)
    starts = pl.col(column).ne_missing(pl.col(column).shift(1)).fill_null(True)
    return index - pl.when(starts).then(index).forward_fill() + 1
