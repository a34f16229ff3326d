"""What every asset of a program shares: its key and owner, the metadata it reports, its stage timings."""
from __future__ import annotations

import time
import warnings
from contextlib import contextmanager

import polars as pl
from dagster import AssetKey, PreviewWarning

from music_feedback.io.metadata import PREVIEW_ROWS, column_schema, preview  # noqa: F401 (used by the stages)
from music_feedback.programs.model import Program

# Per-partition check results are what an operator needs ("which day failed?"); the API is in preview.
warnings.filterwarnings("ignore", category=PreviewWarning, message="Specifying a partitions_def on an AssetCheckSpec")

OWNER = "team:data-engineering"


def key(program: Program, name: str) -> AssetKey:
    return AssetKey([program.slug, name])


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
