"""Frames written one after another into one Parquet object, so a stage's memory is bounded by a chunk
rather than by the day."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable, Iterable

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from music_feedback.io.metadata import PREVIEW_ROWS, column_schema, preview


@dataclass
class FrameChunks:
    """An output the IO manager writes chunk by chunk. `chunks` yields polars frames or Arrow record
    batches of one schema; `schema` (Arrow) gives the empty object its columns when there is no chunk.
    `rows` counts what was written, for the stage's metadata. `copy`, when given, writes the whole object
    to a local path by itself (a warehouse's own Parquet writer) and returns its row count."""
    chunks: Iterable[pl.DataFrame | pa.RecordBatch]
    schema: pa.Schema | None = None
    copy: Callable[[str], int] | None = None
    rows: int = field(default=0, init=False)
    sample: pl.DataFrame | None = field(default=None, init=False)  # the first rows, for the UI's preview

    def metadata(self) -> dict:
        """Row count, columns and preview, as a frame output's (known once written)."""
        sample = self.sample if self.sample is not None else pl.DataFrame()
        return {"dagster/row_count": self.rows, "dagster/column_schema": column_schema(sample),
                "preview": preview(sample)}

    def write(self, target) -> None:
        if self.copy is not None and isinstance(target, (str, os.PathLike)):
            self.rows = self.copy(str(target))
            self.sample = pl.read_parquet(target, n_rows=PREVIEW_ROWS)
            return
        writer = None
        try:
            for chunk in self.chunks:
                table = chunk.to_arrow() if isinstance(chunk, pl.DataFrame) else pa.Table.from_batches([chunk])
                if writer is None:
                    writer = pq.ParquetWriter(target, table.schema, compression="lz4", write_statistics=False)
                elif table.schema != writer.schema:
                    table = table.cast(writer.schema)
                writer.write_table(table)
                if self.sample is None:
                    self.sample = pl.from_arrow(table.slice(0, PREVIEW_ROWS))
                self.rows += table.num_rows
            if writer is None:
                schema = self.schema if self.schema is not None else pa.schema([])
                writer = pq.ParquetWriter(target, schema, compression="lz4")
                self.sample = pl.from_arrow(schema.empty_table())
        finally:
            if writer is not None:
                writer.close()
