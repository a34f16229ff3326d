"""What every asset of a program shares: its key and owner, the metadata it reports, its stage timings."""
from __future__ import annotations

import time
import warnings
from contextlib import contextmanager

import polars as pl
from dagster import AssetKey, PreviewWarning

from music_feedback.io.metadata import PREVIEW_ROWS, column_schema, preview  # noqa: F401 (used by the stages)
from music_feedback.programs.model import Program
from music_feedback.settings import get_env

# Per-partition check results are what an operator needs ("which day failed?"); the API is in preview.
warnings.filterwarnings("ignore", category=PreviewWarning, message="Specifying a partitions_def on an AssetCheckSpec")

OWNER = "team:data-engineering"
# The warehouse that runs the batch's SQL stages, for the assets' kind tags in the UI.
WAREHOUSE_KIND = "redshift" if get_env() == "aws" else "duckdb"


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
