"""The batch's standalone checks: after a day is materialized, each runs alone (as the UI's "Execute" on one
check does), judges what the stage persisted, and reports its observed values; a change to the persisted data
or metadata makes it fail."""
from __future__ import annotations

from datetime import timedelta

import polars as pl
import pytest
from dagster import AssetCheckKey, AssetKey, AssetMaterialization, instance_for_test

from music_feedback import runner
from music_feedback.definitions import build_definitions, daily_job_name
from music_feedback.programs.loader import load_programs
from music_feedback_tests.conftest import BATCH_DAY

pytestmark = pytest.mark.graph

STANDALONE = {"raw_streams": {"extract_fields_valid", "row_count_vs_previous_day", "rejected_share_within_limit"},
              "unified_candidates": {"unique_and_complete"},
              "filtered_candidates": {"row_count_vs_previous_day"},
              "listener_features": {"listener_features_valid"}, "track_features": {"track_features_valid"},
              "scored_candidates": {"scores_in_range"}, "stored_candidates": {"store_returns_what_was_scored"}}


@pytest.fixture
def program():
    return load_programs()[0]


@pytest.fixture
def materialized_day(data_home, program):
    """An instance holding BATCH_DAY's materialized batch; yields (instance, definitions)."""
    with instance_for_test() as instance:
        defs = build_definitions()
        runner.ensure_models(defs, program, instance, day=BATCH_DAY)
        assert runner.run_batch(defs, program, BATCH_DAY, instance).success
        yield instance, defs


def only(defs, instance, check: AssetCheckKey):
    """Execute the one check, nothing else, for BATCH_DAY: the daily job's subset of that check, as the UI
    launches a check's "Execute"."""
    job = defs.resolve_job_def(daily_job_name(load_programs()[0])).get_subset(
        asset_selection=set(), asset_check_selection={check})
    result = job.execute_in_process(partition_key=BATCH_DAY.isoformat(), instance=instance, raise_on_error=False)
    assert result.get_asset_materialization_events() == []
    evaluations = result.get_asset_check_evaluations()
    assert [(e.asset_key, e.check_name) for e in evaluations] == [(check.asset_key, check.name)]
    return evaluations[0]


def test_the_moved_checks_are_standalone_blocking_partitioned_and_in_the_daily_job(program):
    defs = build_definitions()
    checks = {spec.key: spec for c in defs.asset_checks for spec in c.check_specs}
    for asset, names in STANDALONE.items():
        for name in names:
            spec = checks[AssetCheckKey(AssetKey([program.slug, asset]), name)]
            assert spec.blocking and spec.partitions_def is not None, spec.key
    job = defs.resolve_job_def(daily_job_name(program))
    in_job = {k.to_user_string() for k in job.asset_layer.asset_graph.asset_check_keys}
    assert {f"{program.slug}/{a}:{n}" for a, names in STANDALONE.items() for n in names} < in_job
    assert f"{program.slug}/filtered_candidates:no_ineligible_listener_passes" in in_job  # in its stage's step


def test_row_count_check_alone_passes_then_fails_on_a_far_off_previous_day(materialized_day, program):
    instance, defs = materialized_day
    raw_key = AssetKey([program.slug, "raw_streams"])
    check = AssetCheckKey(raw_key, "row_count_vs_previous_day")
    rows = instance.fetch_materializations(raw_key, limit=1).records[0].asset_materialization.metadata[
        "dagster/row_count"].value

    ok = only(defs, instance, check)
    assert ok.passed and ok.metadata["rows"].value == rows

    # The previous partition's metadata now says ten times as many rows: today's count is far off.
    instance.report_runless_asset_event(AssetMaterialization(
        raw_key, partition=(BATCH_DAY - timedelta(days=1)).isoformat(), metadata={"dagster/row_count": rows * 10}))
    failed = only(defs, instance, check)
    assert not failed.passed
    assert failed.metadata["rows"].value == rows and failed.metadata["previous_row_count"].value == rows * 10
    assert failed.metadata["baseline"].value == "previous partition"
    assert f"{rows:,} rows against {rows * 10}" in failed.description


def test_extract_fields_check_alone_judges_the_stored_frame(materialized_day, program, data_home):
    instance, defs = materialized_day
    check = AssetCheckKey(AssetKey([program.slug, "raw_streams"]), "extract_fields_valid")
    assert only(defs, instance, check).passed

    # The stored raw_streams now holds three plays of the day before.
    path = data_home / "assets" / program.slug / "raw_streams" / f"{BATCH_DAY}.parquet"
    raw = pl.read_parquet(path)
    shifted = pl.int_range(pl.len()) < 3
    raw.with_columns(pl.when(shifted).then(pl.col("played_at") - timedelta(days=1)).otherwise(pl.col("played_at"))
                     .alias("played_at")).write_parquet(path)
    failed = only(defs, instance, check)
    assert not failed.passed and failed.metadata["played_outside_day"].value == 3
    assert "played_outside_day 3" in failed.description


def test_store_check_alone_reads_the_candidate_store(materialized_day, program):
    instance, defs = materialized_day
    result = only(defs, instance, AssetCheckKey(AssetKey([program.slug, "stored_candidates"]),
                                                "store_returns_what_was_scored"))
    assert result.passed
    assert result.metadata["stored_minus_written"].value == 0 and result.metadata["sample_rows_missing"].value == 0


def test_unify_check_alone_counts_in_the_warehouse_what_was_stored(materialized_day, program, data_home):
    """The statistics are SQL over the stored stages: a pair written twice shows as one duplicate and its
    plays as counted twice."""
    instance, defs = materialized_day
    check = AssetCheckKey(AssetKey([program.slug, "unified_candidates"]), "unique_and_complete")
    assert only(defs, instance, check).passed
    path = data_home / "assets" / program.slug / "unified_candidates" / f"{BATCH_DAY}.parquet"
    unified = pl.read_parquet(path)
    pl.concat([unified, unified.head(1)]).write_parquet(path)
    failed = only(defs, instance, check)
    assert not failed.passed
    assert failed.metadata["duplicate_pairs"].value == 1 and failed.metadata["rows_minus_raw_pairs"].value == 1
    assert failed.metadata["plays_lost"].value == -unified["play_count"][0]
