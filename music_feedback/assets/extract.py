"""raw_streams: the day's completed plays of new tracks; malformed rows go to rejected_streams."""

import polars as pl
from dagster import AssetCheckSpec, AssetExecutionContext, AssetOut, Output, multi_asset

from music_feedback.assets.common import OWNER, Stopwatch, batch_date, frame_metadata, key
from music_feedback.programs.model import Program
from music_feedback.quality.checks import row_count_expectation, run_suite
from music_feedback.quality.expectations import Between, NotNull
from music_feedback.transforms.validate import EXTRACT_COLUMNS, REQUIRED, malformed_rows_query, split_invalid
from music_feedback.warehouse.port import Warehouse, WarehouseError, bind_batch_window


MAX_REJECTED_SHARE = 0.01  # more than this many malformed rows means a broken feed, not noise


def build_extract(program: Program, partitions):
    raw_key, rejected_key = key(program, "raw_streams"), key(program, "rejected_streams")
    connector = program.connector

    @multi_asset(
        name=f"{program.slug}__extract",
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
        check_specs=[
            AssetCheckSpec("extract_fields_valid", asset=raw_key, blocking=True,
                           description="Required fields non-null; completion, engagement and play count in range."),
            AssetCheckSpec("row_count_vs_previous_day", asset=raw_key, blocking=True,
                           description="Row count within 0.5x-2x of the previous partition's."),
            AssetCheckSpec("rejected_share_within_limit", asset=raw_key, blocking=True,
                           description=f"At most {MAX_REJECTED_SHARE:.0%} of extracted rows set aside as malformed."),
        ],
    )
    def extract(context: AssetExecutionContext, warehouse: Warehouse):
        day = batch_date(context)
        watch = Stopwatch()
        with watch.stage("query"):
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
        yield Output(valid, "raw_streams", metadata=frame_metadata(
            valid, watch.total, extracted_rows=raw.height, rejected_rows=rejected.height,
            rejected_by_reason=reasons, stage_seconds=watch.stages, connector=connector.connector_id))
        yield Output(rejected, "rejected_streams", metadata=frame_metadata(rejected, watch.total, by_reason=reasons))
        yield run_suite(raw_key, "extract_fields_valid", valid, [
            *(NotNull(c) for c in REQUIRED),
            Between("completion_rate", 0.95, 1.0), Between("engagement_score", 0.0, 1.0),
            Between("play_count", 1, None)])
        expectations, meta = row_count_expectation(context.instance, raw_key, day)
        yield run_suite(raw_key, "row_count_vs_previous_day", valid, expectations, **meta)
        share = pl.DataFrame({"rejected_share": [rejected.height / max(raw.height, 1)]})
        yield run_suite(raw_key, "rejected_share_within_limit", share,
                        [Between("rejected_share", 0.0, MAX_REJECTED_SHARE)], rejected_rows=rejected.height)

    return extract
