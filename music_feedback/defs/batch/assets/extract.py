"""raw_streams: the day's completed plays of new tracks; malformed rows go to rejected_streams. Its checks are
standalone (defs/batch/assets/checks.py)."""

import polars as pl
from dagster import AssetExecutionContext, AssetOut, Output, multi_asset

from music_feedback.defs.common import OWNER, Stopwatch, frame_metadata, key
from music_feedback.defs.partitions import batch_date
from music_feedback.defs.warehouse_tables.assets import table_key
from music_feedback.programs.model import Program
from music_feedback.quality.gx_runner import warm_up_in_background
from music_feedback.transforms.validate import EXTRACT_COLUMNS, malformed_rows_query, split_invalid
from music_feedback.warehouse.port import Warehouse, WarehouseError, bind_batch_window



def build_extract(program: Program, partitions):
    raw_key, rejected_key = key(program, "raw_streams"), key(program, "rejected_streams")
    connector = program.connector

    @multi_asset(
        name=f"{program.slug}__extract", deps=[table_key(connector.config.table)],
        outs={
            "raw_streams": AssetOut(
                key=raw_key, group_name=program.slug, owners=[OWNER], kinds={"sql", "polars"},
                description=f"Completed plays (>= 95%) on day D of tracks released in the 7 days before, "
                            f"extracted by connector '{connector.connector_id}' ({connector.type})."),
            "rejected_streams": AssetOut(
                key=rejected_key, group_name=program.slug, owners=[OWNER], kinds={"polars"},
                description="Extracted rows set aside because a field was null or out of range, with a reason."),
        },
        partitions_def=partitions,
    )
    def extract(context: AssetExecutionContext, warehouse: Warehouse):
        day = batch_date(context)
        watch = Stopwatch()
        warm_up_in_background()
        with watch.stage("query"), warehouse.session():
            warehouse.require_contract(connector.connector_id, connector.config.table)
            try:
                raw = warehouse.fetch(bind_batch_window(connector.config.query, day))
            except WarehouseError as exc:
                raise WarehouseError(f"connector '{connector.connector_id}': {exc}") from None
            missing = [c for c in EXTRACT_COLUMNS if c not in raw.columns]
            if missing:
                raise WarehouseError(f"connector '{connector.connector_id}': its query does not select "
                                     f"{', '.join(missing)}; the extract needs {', '.join(EXTRACT_COLUMNS)}")
            dropped = warehouse.fetch(bind_batch_window(malformed_rows_query(connector.config.table), day))
            raw = pl.concat([raw.select(EXTRACT_COLUMNS), dropped.select(EXTRACT_COLUMNS)], how="vertical_relaxed")
        with watch.stage("validate"):
            valid, rejected = split_invalid(raw)
        reasons = dict(rejected.group_by("reason").len().sort("reason").iter_rows())
        # extracted_rows and rejected_rows are what the standalone checks (assets/checks.py) read back.
        yield Output(valid, "raw_streams", metadata=frame_metadata(
            valid, watch.total, extracted_rows=raw.height, rejected_rows=rejected.height,
            rejected_by_reason=reasons, stage_seconds=watch.stages, connector=connector.connector_id))
        yield Output(rejected, "rejected_streams", metadata=frame_metadata(rejected, watch.total, by_reason=reasons))

    return extract
