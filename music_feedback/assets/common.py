"""What every asset of a program shares: keys, partitions, metadata, timings."""
from __future__ import annotations

import time
import warnings
from contextlib import contextmanager
from datetime import date

import polars as pl
from dagster import (AssetKey, DailyPartitionsDefinition, MetadataValue, PreviewWarning, TableColumn,
                     TableSchema)

from music_feedback.programs.model import Program

# Per-partition check results are what an operator needs ("which day failed?"); the API is in preview.
warnings.filterwarnings("ignore", category=PreviewWarning, message="Specifying a partitions_def on an AssetCheckSpec")

OWNER = "team:data-engineering"
PREVIEW_ROWS = 5


def key(program: Program, name: str) -> AssetKey:
    return AssetKey([program.slug, name])


FALLBACK_START = date(2026, 1, 1)


def partitions_start(program: Program) -> date:
    """The program's partitionsStartDate, else the first day of plays the embedded warehouse holds (so the
    UI lists only days that can have data), else FALLBACK_START when there is no warehouse to ask."""
    if program.partitions_start_date:
        return date.fromisoformat(program.partitions_start_date)
    from music_feedback import settings
    from music_feedback.warehouse.duckdb_warehouse import DuckDBWarehouse
    path = settings.warehouse_path()
    if settings.get_env() == "local" and path.is_file():
        try:
            start = DuckDBWarehouse(path=str(path)).meta().get("start_date")
        except Exception:  # an unreadable warehouse is reported by the run that reads it, with its path
            start = None
        if start:
            return date.fromisoformat(start)
    return FALLBACK_START


def daily_partitions(program: Program) -> DailyPartitionsDefinition:
    """Partition D holds day D's plays; it is complete, and scheduled, once D has ended."""
    return DailyPartitionsDefinition(start_date=partitions_start(program).isoformat(), end_offset=0)


def batch_date(context) -> date:
    return date.fromisoformat(context.partition_key)


def preview(frame: pl.DataFrame, columns: list[str] | None = None) -> MetadataValue:
    head = frame.select(columns or frame.columns[:10]).head(PREVIEW_ROWS)
    header = "| " + " | ".join(head.columns) + " |\n|" + "---|" * len(head.columns) + "\n"
    rows = "".join("| " + " | ".join(str(v) for v in row) + " |\n" for row in head.iter_rows())
    return MetadataValue.md(header + rows)


def column_schema(frame: pl.DataFrame) -> TableSchema:
    return TableSchema(columns=[TableColumn(name, str(dtype)) for name, dtype in frame.schema.items()])


def frame_metadata(frame: pl.DataFrame, seconds: float, **extra) -> dict:
    return {"dagster/row_count": frame.height, "dagster/column_schema": column_schema(frame),
            "duration_s": round(seconds, 3), "preview": preview(frame), **extra}


class Stopwatch:
    """Named stage timings for an asset's metadata."""

    def __init__(self):
        self.started = time.perf_counter()
        self.stages: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str):
        t = time.perf_counter()
        yield
        self.stages[name] = round(time.perf_counter() - t, 3)

    @property
    def total(self) -> float:
        return time.perf_counter() - self.started
