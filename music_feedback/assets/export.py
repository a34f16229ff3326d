"""s3_export: the day's scored candidates in the lake as Parquet, by run date and marketplace."""

import polars as pl
from dagster import AssetExecutionContext, AssetIn, MaterializeResult, MetadataValue, asset

from music_feedback.assets.common import OWNER, Stopwatch, batch_date, key
from music_feedback.lake.port import Lake, split
from music_feedback.programs.model import Program

TABLE = "candidates"


def build_export(program: Program, partitions):
    @asset(
        key=key(program, "s3_export"), group_name=program.slug, owners=[OWNER], kinds={"parquet", "s3"},
        partitions_def=partitions, ins={"scored": AssetIn(key(program, "scored_candidates"))},
        deps=[key(program, "stored_candidates")],
        description="The day's scored candidates in the lake (a local folder, or S3 with Glue partitions on "
                    "AWS), Parquet with zstd in `candidates/run_date=D/marketplace=M/`. Re-running a day "
                    "replaces it whole; a reader sees the old day or the new one.")
    def s3_export(context: AssetExecutionContext, lake: Lake, scored: pl.DataFrame) -> MaterializeResult:
        day = batch_date(context).isoformat()
        watch = Stopwatch()
        rows = scored.with_columns(pl.lit(day).alias("batch_date"))
        if isinstance(rows.schema.get("features"), pl.Struct):  # the lake's readers keep the JSON text they had
            rows = rows.with_columns(pl.col("features").struct.json_encode())
        parts = split(rows) if rows.height else {}
        written = lake.replace_day(TABLE, day, parts)
        if not rows.height:
            context.log.warning(f"{day}: no candidates; the day is exported empty")
        return MaterializeResult(metadata={
            "dagster/row_count": rows.height, "rows_by_marketplace": {m: f.height for m, f in parts.items()},
            "files": len(written), "location": MetadataValue.path(written[0].rsplit("/marketplace=", 1)[0])
            if written else lake.describe(), "lake": lake.describe(), "duration_s": round(watch.total, 3)})

    return s3_export
