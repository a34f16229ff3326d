"""Expectation specs and results as plain data, so suites are declared without importing GX."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence, Union

_MAX_SHOWN_VALUES = 6  # values of a set shown in a description


def _fmt_values(values: Sequence[Any]) -> str:
    shown = ", ".join(str(v) for v in values[:_MAX_SHOWN_VALUES])
    extra = len(values) - _MAX_SHOWN_VALUES
    return "{" + shown + (f", ... +{extra}" if extra > 0 else "") + "}"


def _as_tuple(values: Any) -> tuple:
    if isinstance(values, (str, bytes)):
        return (values,)
    if isinstance(values, (set, frozenset)):
        # Sets have no stable order; sort for reproducible descriptions when possible.
        try:
            return tuple(sorted(values))
        except TypeError:
            return tuple(values)
    return tuple(values)


def _bounds_text(name: str, lo: Any, hi: Any) -> str:
    if lo is not None and hi is not None:
        return f"{lo} <= {name} <= {hi}"
    if lo is not None:
        return f"{name} >= {lo}"
    return f"{name} <= {hi}"


# --- expectation specs: plain data, so suites can be declared without importing GX ------


@dataclass(frozen=True)
class Unique:
    """Values (or combinations of values) of `columns` are unique; rows of all-null keys are ignored."""

    columns: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "columns", _as_tuple(self.columns))
        if not self.columns:
            raise ValueError("Unique needs at least one column")

    @property
    def needed_columns(self) -> tuple[str, ...]:
        return self.columns

    def describe(self) -> str:
        return f"{', '.join(self.columns)} unique"

    def _to_gx(self, gxe: Any, **common: Any) -> Any:
        if len(self.columns) == 1:
            return gxe.ExpectColumnValuesToBeUnique(column=self.columns[0], **common)
        return gxe.ExpectCompoundColumnsToBeUnique(column_list=list(self.columns), **common)


@dataclass(frozen=True)
class NotNull:
    """No null values (pandas semantics: a float NaN counts as null too)."""

    column: str

    @property
    def needed_columns(self) -> tuple[str, ...]:
        return (self.column,)

    def describe(self) -> str:
        return f"{self.column} not null"

    def _to_gx(self, gxe: Any, **common: Any) -> Any:
        return gxe.ExpectColumnValuesToNotBeNull(column=self.column, **common)


@dataclass(frozen=True)
class Between:
    """Inclusive bounds, either may be None; nulls are ignored (pair with NotNull)."""

    column: str
    min_value: Any = None
    max_value: Any = None

    def __post_init__(self) -> None:
        if self.min_value is None and self.max_value is None:
            raise ValueError("Between needs min_value or max_value")

    @property
    def needed_columns(self) -> tuple[str, ...]:
        return (self.column,)

    def describe(self) -> str:
        return _bounds_text(self.column, self.min_value, self.max_value)

    def _to_gx(self, gxe: Any, **common: Any) -> Any:
        return gxe.ExpectColumnValuesToBeBetween(
            column=self.column, min_value=self.min_value, max_value=self.max_value, **common
        )


def MaxValue(column: str, max_value: Any) -> Between:  # noqa: N802 - reads like the other specs
    """Column max <= max_value, which is the same as every value <= max_value."""
    return Between(column, None, max_value)


@dataclass(frozen=True)
class InSet:
    """Every non-null value is one of `values`."""

    column: str
    values: tuple

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", _as_tuple(self.values))

    @property
    def needed_columns(self) -> tuple[str, ...]:
        return (self.column,)

    def describe(self) -> str:
        return f"{self.column} in {_fmt_values(self.values)}"

    def _to_gx(self, gxe: Any, **common: Any) -> Any:
        return gxe.ExpectColumnValuesToBeInSet(
            column=self.column, value_set=list(self.values), **common
        )


@dataclass(frozen=True)
class NotInSet(InSet):
    """No value is one of `values`."""

    def describe(self) -> str:
        return f"{self.column} not in {_fmt_values(self.values)}"

    def _to_gx(self, gxe: Any, **common: Any) -> Any:
        return gxe.ExpectColumnValuesToNotBeInSet(
            column=self.column, value_set=list(self.values), **common
        )


@dataclass(frozen=True)
class RowCountBetween:
    """Inclusive row-count bounds, either may be None."""

    min_value: int | None = None
    max_value: int | None = None

    def __post_init__(self) -> None:
        if self.min_value is None and self.max_value is None:
            raise ValueError("RowCountBetween needs min_value or max_value")

    @property
    def needed_columns(self) -> tuple[str, ...]:
        return ()

    def describe(self) -> str:
        return _bounds_text("row count", self.min_value, self.max_value)

    def _to_gx(self, gxe: Any, **common: Any) -> Any:
        return gxe.ExpectTableRowCountToBeBetween(
            min_value=self.min_value, max_value=self.max_value, **common
        )


Expectation = Union[Unique, NotNull, Between, InSet, NotInSet, RowCountBetween]


# --- results -----------------------------------------------------------------------------


@dataclass
class ExpectationOutcome:
    expectation: str
    success: bool
    unexpected_count: int | None = None
    partial_unexpected: list = field(default_factory=list)
    observed_value: Any = None  # aggregate expectations (row count) report this instead
    error: str | None = None  # set when GX raised or a column is missing

    def line(self) -> str:
        text = f"{'ok  ' if self.success else 'FAIL'} {self.expectation}"
        if self.error:
            return f"{text}: error: {self.error}"
        if not self.success:
            if self.unexpected_count is not None:
                text += f": {self.unexpected_count} unexpected"
                if any(v is not None for v in self.partial_unexpected):
                    text += f", e.g. {self.partial_unexpected}"
            elif self.observed_value is not None:
                text += f": observed {self.observed_value}"
        return text


@dataclass
class SuiteResult:
    success: bool
    results: list[ExpectationOutcome]
    elapsed_s: float
    suite_name: str = ""
    row_count: int = 0

    @property
    def failures(self) -> list[ExpectationOutcome]:
        return [r for r in self.results if not r.success]

    def summary(self) -> str:
        """Plain text for Dagster check metadata / logs."""
        passed = sum(r.success for r in self.results)
        head = (
            f"suite {self.suite_name!r} {'passed' if self.success else 'FAILED'}: "
            f"{passed}/{len(self.results)} expectations on {self.row_count} rows "
            f"in {self.elapsed_s:.2f}s"
        )
        return "\n".join([head, *("  " + r.line() for r in self.results)])
