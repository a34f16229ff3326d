"""The suites that stand between the stages, and the row-count bounds against the previous partition."""
from __future__ import annotations

from datetime import date, timedelta

import polars as pl
from dagster import AssetCheckResult, AssetCheckSeverity, AssetKey, AssetRecordsFilter, MetadataValue

from music_feedback.quality.expectations import RowCountBetween, SuiteResult
from music_feedback.quality.gx_runner import validate

ROW_COUNT_BOUNDS = (0.5, 2.0)  # today's rows / the previous partition's rows


def check_result(asset_key: AssetKey, name: str, result: SuiteResult, **metadata) -> AssetCheckResult:
    failed = [o.expectation for o in result.results if not o.success]
    return AssetCheckResult(
        asset_key=asset_key, check_name=name, passed=result.success, severity=AssetCheckSeverity.ERROR,
        description="; ".join(failed) if failed else None,
        metadata={"suite": MetadataValue.md(result.summary()), "gx_seconds": round(result.elapsed_s, 3),
                  "failed_expectations": len(failed), **metadata},
    )


def run_suite(asset_key: AssetKey, name: str, frame: pl.DataFrame, expectations: list, **metadata):
    return check_result(asset_key, name, validate(frame, f"{'.'.join(asset_key.path)}.{name}", expectations),
                        **metadata)


def previous_row_count(instance, asset_key: AssetKey, partition: date) -> int | None:
    """Row count the previous day's partition reported, if it was materialized."""
    prev = (partition - timedelta(days=1)).isoformat()
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=asset_key, asset_partitions=[prev]), limit=1).records
    if not records:
        return None
    value = records[0].asset_materialization.metadata.get("dagster/row_count")
    return None if value is None else int(value.value)


def row_count_expectation(instance, asset_key: AssetKey, partition: date) -> tuple[list, dict]:
    """Within ROW_COUNT_BOUNDS of the previous partition; at least one row when there is none."""
    prev = previous_row_count(instance, asset_key, partition)
    if prev is None:
        return [RowCountBetween(1, None)], {"previous_row_count": "none (first partition)"}
    lo, hi = int(prev * ROW_COUNT_BOUNDS[0]), int(prev * ROW_COUNT_BOUNDS[1]) + 1
    return [RowCountBetween(lo, hi)], {"previous_row_count": prev}
