"""An expectation suite's violations counted over a stored frame's lazy scan, by polars' streaming engine:
one row of counts whatever the frame's size, for GX to judge (a stats suite) instead of the frame itself."""
from __future__ import annotations

import polars as pl

from music_feedback.quality.expectations import Between, InSet, NotNull, Unique


def _count(expectation) -> tuple[str, pl.Expr]:
    """(the statistic's name, its count of the rows that break `expectation`)."""
    if isinstance(expectation, NotNull):
        c = pl.col(expectation.column)  # a float NaN counts as null, as GX reads pandas
        return f"{expectation.column}_null", (c.is_null() | c.cast(pl.Float64, strict=False).is_nan().fill_null(False)
                                              ).sum()
    if isinstance(expectation, Between):
        c, lo, hi = pl.col(expectation.column), expectation.min_value, expectation.max_value
        outside = pl.lit(False)
        if lo is not None:
            outside = outside | (c < lo)
        if hi is not None:
            outside = outside | (c > hi)
        return f"{expectation.column}_out_of_range", outside.fill_null(False).sum()
    if isinstance(expectation, Unique):
        keys = pl.struct(list(expectation.columns))
        not_null = pl.any_horizontal(pl.col(c).is_not_null() for c in expectation.columns)
        return (f"{'_'.join(expectation.columns)}_duplicates",
                not_null.sum() - keys.filter(not_null).n_unique())
    if isinstance(expectation, InSet):
        return (f"{expectation.column}_not_in_set",
                (~pl.col(expectation.column).is_in(list(expectation.values))).fill_null(False).sum())
    raise TypeError(f"no streaming count for {type(expectation).__name__}")


def violation_counts(scan: pl.LazyFrame, expectations) -> dict[str, int]:
    counts = [_count(e) for e in expectations]
    row = scan.select(expr.alias(name) for name, expr in counts).collect(engine="streaming").row(0)
    return {name: int(v or 0) for (name, _), v in zip(counts, row)}
