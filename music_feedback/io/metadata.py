"""What the UI shows of a stored frame: its columns and its first rows."""
from __future__ import annotations

import polars as pl
from dagster import MetadataValue, TableColumn, TableSchema

PREVIEW_ROWS = 5


def preview(frame: pl.DataFrame, columns: list[str] | None = None) -> MetadataValue:
    head = frame.select(columns or frame.columns[:10]).head(PREVIEW_ROWS)
    header = "| " + " | ".join(head.columns) + " |\n|" + "---|" * len(head.columns) + "\n"
    rows = "".join("| " + " | ".join(str(v) for v in row) + " |\n" for row in head.iter_rows())
    return MetadataValue.md(header + rows)


def column_schema(frame: pl.DataFrame) -> TableSchema:
    return TableSchema(columns=[TableColumn(name, str(dtype)) for name, dtype in frame.schema.items()])
