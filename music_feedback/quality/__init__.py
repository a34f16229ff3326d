"""Data-quality checks; GX is only imported when a suite actually runs."""

from music_feedback.quality.expectations import (
    Between,
    ExpectationOutcome,
    InSet,
    MaxValue,
    NotInSet,
    NotNull,
    RowCountBetween,
    SuiteResult,
    Unique,
)
from music_feedback.quality.gx_runner import validate

__all__ = [
    "Between",
    "ExpectationOutcome",
    "InSet",
    "MaxValue",
    "NotInSet",
    "NotNull",
    "RowCountBetween",
    "SuiteResult",
    "Unique",
    "validate",
]
