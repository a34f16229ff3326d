"""The suites that stand between the stages, and the row-count bounds against the previous partition."""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Callable

import polars as pl
from dagster import AssetCheckResult, AssetCheckSeverity, AssetKey, AssetRecordsFilter, MetadataValue

from music_feedback.quality.expectations import Between, SuiteResult
from music_feedback.quality.gx_runner import validate

ROW_COUNT_BOUNDS = (0.5, 2.0)  # today's rows / the previous partition's rows


def check_result(asset_key: AssetKey, name: str, result: SuiteResult, observed: str | None = None,
                 **metadata) -> AssetCheckResult:
    """`observed` says in words what was seen ("4.9% of 2,128,597 rows set aside"); every failure also
    carries GX's observed values, not just the rule."""
    failed = [o.line().removeprefix("FAIL ") for o in result.results if not o.success]
    if failed and observed:
        failed.insert(0, f"observed {observed}")
    return AssetCheckResult(
        asset_key=asset_key, check_name=name, passed=result.success, severity=AssetCheckSeverity.ERROR,
        description="; ".join(failed) if failed else None,
        metadata={"suite": MetadataValue.md(result.summary()), "gx_seconds": round(result.elapsed_s, 3),
                  "failed_expectations": len(failed), **metadata},
    )


def run_suite(asset_key: AssetKey, name: str, frame: pl.DataFrame, expectations: list,
              observed: str | None = None, **metadata):
    return check_result(asset_key, name, validate(frame, f"{'.'.join(asset_key.path)}.{name}", expectations),
                        observed, **metadata)


@dataclass(frozen=True)
class StatsSuite:
    """One check's statistics (one row), its expectations on them, what it observed and its metadata."""
    name: str
    stats: dict
    expectations: list
    observed: str | None
    metadata: dict


def stats_suite(name: str, stats: dict, expectations: list, observed: str | None = None, **metadata) -> StatsSuite:
    if observed is None:
        observed = ", ".join(f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}" for k, v in stats.items()
                             if v not in (0, None))
    return StatsSuite(name, stats, expectations, observed or None, {**stats, **metadata})


def judge_stats_suites(asset_key: AssetKey, suites: list[StatsSuite]) -> list[AssetCheckResult]:
    """Several checks of one asset judged in one GX validation of one row holding all their statistics (a
    validation costs GX tens of milliseconds whatever its size); each check gets its own result. Their
    statistics' names must differ."""
    if not suites:
        return []
    whole = validate(pl.DataFrame([{k: v for s in suites for k, v in s.stats.items()}]),
                     f"{'.'.join(asset_key.path)}.{'+'.join(s.name for s in suites)}",
                     [e for s in suites for e in s.expectations])
    results, start = [], 0
    for s in suites:
        mine = whole.results[start:start + len(s.expectations)]
        start += len(s.expectations)
        part = SuiteResult(all(o.success for o in mine), mine, whole.elapsed_s,
                           f"{'.'.join(asset_key.path)}.{s.name}", whole.row_count)
        results.append(check_result(asset_key, s.name, part, s.observed, **s.metadata))
    return results


def run_stats_suite(asset_key: AssetKey, name: str, stats: dict, expectations: list,
                    observed: str | None = None, **metadata):
    """Polars computes the statistics over the big frame; GX judges the one-row frame of them (GX on
    1.5M rows costs seconds, and the failure then shows the observed statistic itself)."""
    return judge_stats_suites(asset_key, [stats_suite(name, stats, expectations, observed, **metadata)])[0]


_CHECKS = ThreadPoolExecutor(max_workers=1, thread_name_prefix="asset-check")


def started(check: Callable[[], AssetCheckResult]) -> "Future[AssetCheckResult]":
    """Start a check on a thread before the step yields its output: its statistics and GX's judgement
    (in the GX worker) then overlap the output's Parquet write, which Dagster does on the step's thread
    when the Output is yielded (polars and DuckDB release the GIL). `.result()` gives the check's result
    after the output, or raises what the check raised."""
    return _CHECKS.submit(check)


def zero(*columns: str) -> list:
    return [Between(c, 0, 0) for c in columns]


def materialization_metadata(instance, asset_key: AssetKey, partition: date) -> dict | None:
    """The metadata of the partition's latest materialization (plain values), or None if it has none: what
    a standalone check reads of its asset besides the stored frame."""
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=asset_key, asset_partitions=[partition.isoformat()]), limit=1).records
    if not records:
        return None
    return {k: v.value for k, v in records[0].asset_materialization.metadata.items()}


def previous_row_count(instance, asset_key: AssetKey, partition: date) -> int | None:
    """Row count the previous day's partition reported, if it was materialized."""
    meta = materialization_metadata(instance, asset_key, partition - timedelta(days=1))
    value = (meta or {}).get("dagster/row_count")
    return None if value is None else int(value)


def row_count_expectation(instance, asset_key: AssetKey, partition: date,
                          first_baseline=None, baseline_label: str = "") -> tuple[list, dict]:
    """Within ROW_COUNT_BOUNDS of the previous partition. On a program's first partition there is none:
    `first_baseline()` gives a count to compare with instead (`baseline_label` says what it is), so the
    first day is checked too; only with no baseline at all is one row enough."""
    prev = previous_row_count(instance, asset_key, partition)
    if prev is not None:
        return bounds_around(prev), {"previous_row_count": prev, "baseline": "previous partition"}
    baseline = first_baseline() if first_baseline else None
    if baseline:
        return bounds_around(baseline), {"previous_row_count": baseline, "baseline": baseline_label}
    return [Between("rows", 1, None)], {"previous_row_count": "none", "baseline": "none: at least one row"}


def row_count_suite(rows: int, expectations: list, meta: dict) -> StatsSuite:
    """The day's row count against its baseline (`row_count_expectation`), as a one-row suite."""
    return StatsSuite("row_count_vs_previous_day", {"rows": rows}, expectations,
                      f"{rows:,} rows against {meta['previous_row_count']} ({meta['baseline']})", {"rows": rows, **meta})


def run_row_count_suite(asset_key: AssetKey, rows: int, expectations: list, meta: dict):
    """The day's row count against its baseline, judged by GX on a one-row frame."""
    return judge_stats_suites(asset_key, [row_count_suite(rows, expectations, meta)])[0]


def bounds_around(baseline: int) -> list:
    lo, hi = int(baseline * ROW_COUNT_BOUNDS[0]), int(baseline * ROW_COUNT_BOUNDS[1]) + 1
    return [Between("rows", lo, hi)]
