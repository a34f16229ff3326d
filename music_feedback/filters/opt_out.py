"""Opt-out alone: what remains of eligibility when a program disables that filter (opt-out is policy)."""
from __future__ import annotations

import polars as pl

from music_feedback.filters.base import CandidateFilter, FilterContext


class OptOutFilter(CandidateFilter):
    kind = "opt-out"
    codes = ("opted_out",)

    def reasons(self, candidates: pl.DataFrame, ctx: FilterContext) -> pl.DataFrame:
        joined = ctx.attach(candidates, "listeners", ["opted_out"])
        return joined.with_columns(
            pl.when(pl.col("opted_out").fill_null(True)).then(self.code("opted_out")).alias("reason"))

    def sql(self, chain, rank=None) -> str:
        return f"CASE WHEN COALESCE(opted_out, TRUE) THEN {self.sql_code('opted_out')} END"
