"""Frames written one after another into one Parquet object, so a stage's memory is bounded by a chunk
rather than by the day."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq


@dataclass
class FrameChunks:
    """An output the IO manager writes chunk by chunk. `chunks` yields polars frames or Arrow record
    batches of one schema; `schema` (Arrow) gives the empty object its columns when there is no chunk.
    `rows` counts what was written, for the stage's metadata."""
    chunks: Iterable[pl.DataFrame | pa.RecordBatch]
    schema: pa.Schema | None = None
    rows: int = field(default=0, init=False)

    def write(self, target) -> None:
        writer = None
        try:
            for chunk in self.chunks:
                table = chunk.to_arrow() if isinstance(chunk, pl.DataFrame) else pa.Table.from_batches([chunk])
                if writer is None:
                    writer = pq.ParquetWriter(target, table.schema, compression="lz4", write_statistics=False)
                elif table.schema != writer.schema:
                    table = table.cast(writer.schema)
                writer.write_table(table)
                self.rows += table.num_rows
            if writer is None:
                schema = self.schema if self.schema is not None else pa.schema([])
                writer = pq.ParquetWriter(target, schema, compression="lz4")
        finally:
            if writer is not None:
                writer.close()
