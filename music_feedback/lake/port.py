"""The lake port: replace one day of a table at once; a reader sees the old day or the new one, never a mix."""
from __future__ import annotations

import abc
import io

import polars as pl
from dagster import ConfigurableResource

PART = "part-0.parquet"


class LakeError(RuntimeError):
    """The lake cannot take the write; the message names the folder, bucket or catalog to fix."""


def parquet_bytes(frame: pl.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.write_parquet(buf, compression="zstd")
    return buf.getvalue()


def split(frame: pl.DataFrame, by: str = "marketplace") -> dict[str, pl.DataFrame]:
    """One frame per partition value, without the partition column (it lives in the path)."""
    return {str(key[0]): part.drop(by) for key, part in frame.partition_by(by, as_dict=True, maintain_order=True).items()}


class Lake(ConfigurableResource):
    @abc.abstractmethod
    def replace_day(self, table: str, run_date: str, parts: dict[str, pl.DataFrame]) -> list[str]:
        """Write `parts` (marketplace -> rows) as the whole of `run_date`, replacing what was there; returns
        the locations written. Raises LakeError, leaving the previous day in place."""

    @abc.abstractmethod
    def read_day(self, table: str, run_date: str) -> pl.DataFrame:
        """The day's rows with their marketplace column; empty if the day was never written."""

    @abc.abstractmethod
    def describe(self) -> str:
        ...
