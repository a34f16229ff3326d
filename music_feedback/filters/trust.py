"""Trust: drop bot-like and unverified listeners, and listeners the warehouse does not know."""
from __future__ import annotations

import polars as pl

from music_feedback.filters.base import CandidateFilter, FilterContext
from music_feedback.filters.sql import literal


class TrustFilter(CandidateFilter):
    kind = "trust"
    defaults = {"maxBotScore": 0.7}
    codes = ("unknown_listener", "bot_activity", "not_authentic")

    def validate_params(self) -> None:
        self._number("maxBotScore", 0.0, 1.0)

    def reasons(self, candidates: pl.DataFrame, ctx: FilterContext) -> pl.DataFrame:
        joined = ctx.attach(candidates, "listeners", ["bot_score", "is_authentic"])
        reason = (
            pl.when(pl.col("bot_score").is_null()).then(self.code("unknown_listener"))
            .when(pl.col("bot_score") >= self.params["maxBotScore"]).then(self.code("bot_activity"))
            .when(~pl.col("is_authentic").fill_null(False)).then(self.code("not_authentic"))
        )
        return joined.with_columns(reason.alias("reason"))

    def sql(self, chain, rank=None) -> str:
        return (f"CASE WHEN bot_score IS NULL THEN {self.sql_code('unknown_listener')} "
                f"WHEN bot_score >= {literal(self.params['maxBotScore'], 'maxBotScore')} "
                f"THEN {self.sql_code('bot_activity')} "
                f"WHEN NOT COALESCE(is_authentic, FALSE) THEN {self.sql_code('not_authentic')} END")
