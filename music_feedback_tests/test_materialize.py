"""The whole graph on a small generated warehouse, through Dagster, as the daily job runs it."""
from __future__ import annotations

import shutil
from datetime import timedelta

import duckdb
import polars as pl
import pytest
from dagster import AssetKey, instance_for_test

from music_feedback import runner
from music_feedback.definitions import build_definitions
from music_feedback.explain import explain
from music_feedback.policy import contact as policy
from music_feedback.policy.gate import ContactGate
from music_feedback.programs.loader import load_programs
from music_feedback.resources import get_resources
from music_feedback_tests.conftest import BATCH_DAY

pytestmark = pytest.mark.graph

DAILY = ["raw_streams", "rejected_streams", "unified_candidates", "filtered_candidates", "candidate_decisions",
         "listener_features", "track_features", "scored_candidates", "stored_candidates"]


@pytest.fixture
def program():
    return load_programs()[0]


def _run(program, day, instance):
    defs = build_definitions()
    runner.ensure_models(defs, program, instance, day=day)
    return runner.run_batch(defs, program, day, instance)


def test_daily_batch_materializes_every_asset_and_check(data_home, program):
    with instance_for_test() as instance:
        report = _run(program, BATCH_DAY, instance)
        assert report.success, report.failure
        assert sorted(report.assets) == sorted(DAILY)
        assert report.checks and all(c["passed"] for c in report.checks.values())
        for name in DAILY:
            meta = report.assets[name]
            assert "dagster/row_count" in meta and "duration_s" in meta and "preview" in meta, name
        raw = report.meta("raw_streams", "dagster/row_count")
        unique = report.meta("unified_candidates", "dagster/row_count")
        kept = report.meta("filtered_candidates", "dagster/row_count")
        removed = report.meta("filtered_candidates", "removed_by_filter")
        assert raw > unique > kept > 0
        assert set(removed) == {"trust", "eligibility", "engagement", "frequency-cap"}
        assert unique - sum(removed.values()) == kept
        assert report.meta("rejected_streams", "dagster/row_count") > 0  # the generator plants malformed rows
        assert report.meta("stored_candidates", "candidates") == kept

    scored = pl.read_parquet(data_home / "assets" / program.slug / "scored_candidates" / f"{BATCH_DAY}.parquet")
    assert scored["score"].is_between(0, 1).all()
    assert scored["propensity_model_version"].str.starts_with("feedback-propensity-v3@").all()
    assert {"engagement_score", "music_taste_profile", "genre", "artist_popularity"} <= {
        f.name for f in scored.schema["features"].fields}
    assert scored["features"].struct.field("engagement_score").equals(scored["engagement_score"], check_names=False)


def test_rerunning_a_day_leaves_exactly_the_same_store_rows(data_home, program):
    store = get_resources()["candidate_store"]
    with instance_for_test() as instance:
        assert _run(program, BATCH_DAY, instance).success
        first = sorted((r["listener_id"], r["track_id"], r["channel"], r["score"])
                       for r in store.for_channel(program.program_id, "email", limit=10**7, now=_day_after()))
        assert _run(program, BATCH_DAY, instance).success
        second = sorted((r["listener_id"], r["track_id"], r["channel"], r["score"])
                        for r in store.for_channel(program.program_id, "email", limit=10**7, now=_day_after()))
    assert first and first == second
    assert store.count(program.program_id, BATCH_DAY.isoformat(), now=_day_after()) >= len(first)


def _day_after():
    from datetime import datetime, time, timezone
    return datetime.combine(BATCH_DAY + timedelta(days=1), time(2), tzinfo=timezone.utc)


def test_a_failing_blocking_check_stops_the_downstream_assets(data_home, program, small_warehouse, monkeypatch):
    """Day D loses most of its plays (a partial load): the row-count check fails and nothing downstream runs."""
    partial = data_home / "partial.duckdb"
    shutil.copy(small_warehouse, partial)
    with duckdb.connect(str(partial)) as con:
        con.execute("DELETE FROM track_plays WHERE played_at >= ? AND listener_id % 10 <> 0", [BATCH_DAY])
    monkeypatch.setenv("MUSIC_FEEDBACK_WAREHOUSE", str(partial))
    with instance_for_test() as instance:
        assert _run(program, BATCH_DAY - timedelta(days=1), instance).success
        report = _run(program, BATCH_DAY, instance)
        failed = [n for n, c in report.checks.items() if not c["passed"]]
        assert failed == ["raw_streams.row_count_vs_previous_day"]
        assert "raw_streams" in report.assets
        assert "unified_candidates" not in report.assets and "stored_candidates" not in report.assets
        key = AssetKey([program.slug, "unified_candidates"])
        assert not instance.fetch_materializations(key, limit=5).records or all(
            r.partition_key != BATCH_DAY.isoformat() for r in instance.fetch_materializations(key, limit=5).records)
    assert not (data_home / "assets" / program.slug / "unified_candidates" / f"{BATCH_DAY}.parquet").exists()


def test_the_guard_blocks_a_filter_that_lets_opt_outs_through(data_home, program, monkeypatch):
    """A faulty eligibility filter keeps opted-out listeners: the blocking guard, reading the listeners
    afresh from the warehouse, fails and nothing downstream of the filter runs."""
    from music_feedback.filters.eligibility import EligibilityFilter
    real = EligibilityFilter.sql

    def keeps_opt_outs(self, chain, rank=None):  # the warehouse's SQL without its opt-out branch
        sql = real(self, chain, rank)
        assert "WHEN COALESCE(opted_out, TRUE) THEN 'opted_out' " in sql
        return sql.replace("WHEN COALESCE(opted_out, TRUE) THEN 'opted_out' ", "")
    monkeypatch.setattr(EligibilityFilter, "sql", keeps_opt_outs)
    with instance_for_test() as instance:
        report = _run(program, BATCH_DAY, instance)
    assert not report.success
    assert [n for n, c in report.checks.items() if not c["passed"]] == [
        "filtered_candidates.no_ineligible_listener_passes"]
    assert "filtered_candidates" in report.assets and "scored_candidates" not in report.assets


def test_a_feed_of_malformed_rows_fails_its_check(data_home, program, small_warehouse, monkeypatch):
    """5% of day D's plays lose their engagement score: they are set aside, and the share check blocks."""
    bad = data_home / "bad.duckdb"
    shutil.copy(small_warehouse, bad)
    with duckdb.connect(str(bad)) as con:
        con.execute("UPDATE track_plays SET engagement_score = NULL WHERE played_at >= ? AND listener_id % 20 = 0",
                    [BATCH_DAY])
    monkeypatch.setenv("MUSIC_FEEDBACK_WAREHOUSE", str(bad))
    with instance_for_test() as instance:
        report = _run(program, BATCH_DAY, instance)
    assert [n for n, c in report.checks.items() if not c["passed"]] == ["raw_streams.rejected_share_within_limit"]
    assert report.meta("rejected_streams", "by_reason")["null_engagement_score"] > 100
    assert "unified_candidates" not in report.assets


def test_missing_warehouse_fails_with_a_clear_message_and_writes_nothing(data_home, program, monkeypatch):
    monkeypatch.setenv("MUSIC_FEEDBACK_WAREHOUSE", str(data_home / "nowhere.duckdb"))
    with instance_for_test() as instance:
        defs = build_definitions()
        report = runner.run_batch(defs, program, BATCH_DAY, instance)
    assert not report.success
    assert "does not exist" in report.failure and "warehouse seed" in report.failure
    assert not (data_home / "assets" / program.slug).exists()


def test_missing_column_names_connector_table_and_column(data_home, program, small_warehouse, monkeypatch):
    broken = data_home / "broken.duckdb"
    shutil.copy(small_warehouse, broken)
    with duckdb.connect(str(broken)) as con:
        con.execute("ALTER TABLE track_plays DROP COLUMN completion_rate")
    monkeypatch.setenv("MUSIC_FEEDBACK_WAREHOUSE", str(broken))
    with instance_for_test() as instance:
        report = runner.run_batch(build_definitions(), program, BATCH_DAY, instance)
    assert not report.success
    assert "redshift-music-streams" in report.failure and "track_plays" in report.failure
    assert "completion_rate" in report.failure
    assert not (data_home / "assets" / program.slug / "raw_streams").exists()


@pytest.mark.parametrize("ddl", ["ALTER TABLE listeners DROP COLUMN bot_score", "DROP TABLE feedback_requests"])
def test_a_broken_side_table_fails_before_anything_is_written(data_home, program, small_warehouse, monkeypatch, ddl):
    broken = data_home / "broken.duckdb"
    shutil.copy(small_warehouse, broken)
    with duckdb.connect(str(broken)) as con:
        con.execute(ddl)
    monkeypatch.setenv("MUSIC_FEEDBACK_WAREHOUSE", str(broken))
    with instance_for_test() as instance:
        report = runner.run_batch(build_definitions(), program, BATCH_DAY, instance)
    assert not report.success and "connector 'redshift-music-streams'" in report.failure
    assert ("bot_score" in report.failure) if "bot_score" in ddl else ("feedback_requests" in report.failure)
    assert not (data_home / "assets" / program.slug).exists()


def test_why_explains_removed_and_kept_candidates(data_home, program):
    with instance_for_test() as instance:
        assert _run(program, BATCH_DAY, instance).success
    root = data_home / "assets"
    store = get_resources()["candidate_store"]
    decisions = pl.read_parquet(root / program.slug / "candidate_decisions" / f"{BATCH_DAY}.parquet")
    removed = decisions.filter(pl.col("reason") == "low_engagement").row(0, named=True)
    lines = explain(root, store, program, removed["listener_id"], removed["track_id"], BATCH_DAY)
    assert "removed by the 'engagement' filter, reason low_engagement" in lines[-1]
    kept = pl.read_parquet(root / program.slug / "scored_candidates" / f"{BATCH_DAY}.parquet").row(0, named=True)
    lines = explain(root, store, program, kept["listener_id"], kept["track_id"], BATCH_DAY)
    assert "passed every filter" in lines[0]
    # With the contact policy: the ledger's state and the policy's answer now, per stored channel.
    resources = get_resources()
    gate = ContactGate(program, resources["warehouse"], resources["feedback_store"])
    at = policy.batch_time(BATCH_DAY)
    lines = explain(root, store, program, kept["listener_id"], kept["track_id"], BATCH_DAY, gate, at)
    assert "email: not planned; contact policy now: may be asked" in "\n".join(lines)
    resources["feedback_store"].opt_out(kept["listener_id"], "test", at)
    lines = explain(root, store, program, kept["listener_id"], kept["track_id"], BATCH_DAY, gate, at)
    assert "contact policy now: no, unsubscribed" in lines[-1]
    lines = explain(root, store, program, 10**9, 1, BATCH_DAY)
    assert "not a candidate" in lines[0]


def test_a_second_program_is_a_yaml_file_and_no_code(tmp_path, monkeypatch):
    """A UK-only copy of the program, with its own history in the warehouse, runs beside the first."""
    import yaml

    from music_feedback.programs.loader import BUILTIN_DIR
    from music_feedback.warehouse.generator import generate
    from music_feedback_tests.conftest import SMALL

    raw = yaml.safe_load((BUILTIN_DIR / "music-feedback.yaml").read_text())
    raw.update(programId="music-feedback-uk", programName="UK track feedback", marketplaces=["UK"])
    programs_dir = tmp_path / "programs"
    programs_dir.mkdir()
    (programs_dir / "uk.yaml").write_text(yaml.safe_dump(raw))
    warehouse = tmp_path / "two.duckdb"
    from dataclasses import replace
    generate(warehouse, replace(SMALL, program_ids=("music-feedback", "music-feedback-uk")), progress=False)
    monkeypatch.setenv("MUSIC_FEEDBACK_HOME", str(tmp_path))
    monkeypatch.setenv("MUSIC_FEEDBACK_WAREHOUSE", str(warehouse))
    monkeypatch.setenv("MUSIC_FEEDBACK_PROGRAMS_DIR", str(programs_dir))
    programs = {p.program_id: p for p in load_programs()}
    assert set(programs) == {"music-feedback", "music-feedback-uk"}
    with instance_for_test() as instance:
        reports = {pid: _run(p, BATCH_DAY, instance) for pid, p in programs.items()}
    assert all(r.success for r in reports.values()), {k: r.failure for k, r in reports.items()}
    uk = pl.read_parquet(tmp_path / "assets" / "music_feedback_uk" / "scored_candidates" / f"{BATCH_DAY}.parquet")
    assert uk.height and set(uk["marketplace"]) == {"UK"}
    both = reports["music-feedback"].meta("filtered_candidates", "dagster/row_count")
    assert 0 < uk.height < both


def test_either_feature_asset_materializes_alone_with_its_check_or_without(data_home, program):
    """Both feature assets come from one step (one read of the candidates, the two hydrations on two
    threads), and each can still be materialized alone, with or without its check."""
    from dagster import AssetCheckKey, AssetSelection, Definitions, define_asset_job

    with instance_for_test() as instance:
        assert _run(program, BATCH_DAY, instance).success
        defs = build_definitions()
        for name in ("listener_features", "track_features"):
            asset_key = AssetKey([program.slug, name])
            check = AssetCheckKey(asset_key, f"{name.split('_')[0]}_features_valid")
            path = data_home / "assets" / program.slug / name / f"{BATCH_DAY}.parquet"
            before = pl.read_parquet(path)
            for with_check in (True, False):
                path.unlink()
                selection = AssetSelection.assets(asset_key)
                job = define_asset_job("one", selection=selection if with_check else selection.without_checks())
                result = Definitions(assets=defs.assets, asset_checks=defs.asset_checks, resources=defs.resources,
                                     jobs=[job]).resolve_job_def("one").execute_in_process(
                    partition_key=BATCH_DAY.isoformat(), instance=instance)
                assert result.success
                assert [e.asset_key for e in result.get_asset_materialization_events()] == [asset_key]
                judged = [(e.asset_key, e.check_name) for e in result.get_asset_check_evaluations()]
                assert judged == ([(asset_key, check.name)] if with_check else [])
                assert pl.read_parquet(path).equals(before)
