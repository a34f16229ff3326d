"""What every filter is: a name, an enable flag, typed parameters, one columnar `apply`."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any, ClassVar

import polars as pl

from music_feedback.transforms.lookup import KeyIndex


# The listener columns the filters read (not time zones or voice flags of 800K listeners).
LISTENER_SIGNALS = ["listener_id", "marketplace", "opted_out", "bot_score", "is_authentic", "engagement_score"]


@dataclass(frozen=True)
class FilterContext:
    """Warehouse lookups the filters join against, loaded once per batch."""
    program_id: str
    batch_date: date
    listeners: pl.DataFrame  # LISTENER_SIGNALS: listener_id, marketplace, opted_out, bot_score, ...
    tracks: pl.DataFrame  # track_id, feedback_eligible, ...
    prior_feedback: pl.DataFrame  # listener_id, track_id already answered
    recent_requests: pl.DataFrame  # listener_id, prior_requests in the cap window
    marketplaces: tuple[str, ...] = ()  # the program's marketplaces; empty means all
    _indexes: dict = field(default_factory=dict, compare=False, repr=False)  # (table, key) -> KeyIndex

    def attach(self, frame: pl.DataFrame, table: str, columns, key: str = "listener_id") -> pl.DataFrame:
        """`frame` left-joined on `key` with `columns` (names, or new name -> column) of this context's
        `table` ("listeners", "tracks" or "recent_requests"); each table is indexed once per batch."""
        index = self._indexes.get((table, key))
        if index is None:
            index = self._indexes[(table, key)] = KeyIndex(getattr(self, table), key)
        return index.attach(frame, columns)


@dataclass(frozen=True)
class FilterResult:
    kept: pl.DataFrame
    removed: pl.DataFrame  # the removed candidates plus a `reason` column


class CandidateFilter:
    """Subclasses set `kind`, `defaults` (parameter -> default), `codes` (the reason codes they give) and
    implement `reasons` or `apply`."""
    kind: ClassVar[str]
    defaults: ClassVar[dict[str, Any]] = {}
    reads: ClassVar[tuple[str, ...]] = ()  # candidate columns used besides listener_id and track_id
    codes: ClassVar[tuple[str, ...]] = ()
    ranks: ClassVar[bool] = False  # True: `sql` reads the pair's rank among its listener's survivors

    def __init__(self, name: str, enabled: bool = True, parameters: dict[str, Any] | None = None):
        self.name, self.enabled = name, enabled
        parameters = parameters or {}
        unknown = sorted(set(parameters) - set(self.defaults))
        if unknown:
            raise ValueError(f"filter '{name}' ({self.kind}): unknown parameter(s) {unknown}; "
                             f"allowed: {sorted(self.defaults)}")
        self.params = {**self.defaults, **parameters}
        self.validate_params()

    def validate_params(self) -> None:
        """Raise ValueError naming the filter and parameter when a value is unusable."""

    def reasons(self, candidates: pl.DataFrame, ctx: FilterContext) -> pl.DataFrame:
        """The candidates with a `reason` column: null to keep, a code to remove."""
        raise NotImplementedError

    def sql(self, chain, rank: str | None = None) -> str:
        """The same reasons as `reasons`, as a SQL expression over the joined candidates (filters/sql.py):
        null to keep, a code to remove. `rank`: the column numbering the listener's surviving pairs in
        `rank_order`, for a filter that `ranks`."""
        raise NotImplementedError

    def rank_order(self) -> str:
        raise NotImplementedError

    def sql_code(self, reason: str) -> str:
        assert reason in self.codes, reason
        return f"'{reason}'"

    def code(self, reason: str) -> pl.Expr:
        """A reason code as a literal of the filter's Enum of `codes`: a when/then chain of text literals
        writes the text into every row (~0.06 s for 1.5M candidates), an Enum only a small integer."""
        return pl.lit(reason, dtype=pl.Enum(self.codes))

    def apply(self, candidates: pl.DataFrame, ctx: FilterContext) -> FilterResult:
        tagged = self.reasons(candidates, ctx)
        assert tagged.height == candidates.height, f"filter {self.name} changed the row count"
        kept = tagged.filter(pl.col("reason").is_null()).drop("reason")
        removed = tagged.filter(pl.col("reason").is_not_null())
        return FilterResult(kept=kept.select(candidates.columns + [c for c in kept.columns
                                                                   if c not in candidates.columns]),
                            removed=removed)

    def _number(self, key: str, lo: float, hi: float, integer: bool = False) -> None:
        value = self.params[key]
        ok = isinstance(value, int) if integer else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok or not lo <= value <= hi:
            kind = "an integer" if integer else "a number"
            raise ValueError(f"filter '{self.name}': parameter {key} must be {kind} in [{lo}, {hi}], got {value!r}")
