"""What every asset of a program shares: keys, partitions, metadata, timings."""
from __future__ import annotations

import time
import warnings
from contextlib import contextmanager
from datetime import date

import polars as pl
from dagster import AssetKey, DailyPartitionsDefinition, MetadataValue, PreviewWarning

from music_feedback.programs.model import Program

# Per-partition check results are what an operator needs ("which day failed?"); the API is in preview.
warnings.filterwarnings("ignore", category=PreviewWarning, message="Specifying a partitions_def on an AssetCheckSpec")

OWNER = "team:data-engineering"
PREVIEW_ROWS = 5


def key(program: Program, name: str) -> AssetKey:
    return AssetKey([program.slug, name])


def daily_partitions(program: Program) -> DailyPartitionsDefinition:
    """Partition D holds day D's plays; it is complete, and scheduled, once D has ended."""
    return DailyPartitionsDefinition(start_date=program.partitions_start_date, end_offset=0)


def batch_date(context) -> date:
    return date.fromisoformat(context.partition_key)


def preview(frame: pl.DataFrame, columns: list[str] | None = None) -> MetadataValue:
    head = frame.select(columns or frame.columns[:10]).head(PREVIEW_ROWS)
    header = "| " + " | ".join(head.columns) + " |\n|" + "---|" * len(head.columns) + "\n"
    rows = "".join("| " + " | ".join(str(v) for v in row) + " |\n" for row in head.iter_rows())
    return MetadataValue.md(header + rows)


def frame_metadata(frame: pl.DataFrame, seconds: float, **extra) -> dict:
    return {"dagster/row_count": frame.height, "duration_s": round(seconds, 3), "preview": preview(frame), **extra}


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
