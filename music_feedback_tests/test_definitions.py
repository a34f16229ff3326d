"""The definitions load, in Dagster's own validator and without importing Great Expectations."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.integration
def test_dagster_definitions_validate(tmp_path):
    dagster = Path(sys.executable).with_name("dagster")
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}  # validate needs an existing instance folder
    proc = subprocess.run([str(dagster), "definitions", "validate", "-w", "workspace.yaml"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.integration
def test_dg_check_defs(tmp_path):
    """`dg` (pyproject's [tool.dg]) finds the project and loads its definitions."""
    dg = Path(sys.executable).with_name("dg")
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "VIRTUAL_ENV": str(Path(sys.executable).parent.parent)}
    proc = subprocess.run([str(dg), "check", "defs"], cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0 and "All definitions loaded successfully" in proc.stdout + proc.stderr, \
        proc.stdout + proc.stderr


@pytest.mark.integration
def test_definitions_do_not_import_great_expectations():
    code = ("import sys; from music_feedback.definitions import defs; "
            "assert 'great_expectations' not in sys.modules; print(len(list(defs.resolve_all_asset_keys())))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    # the batch and model assets (11), the day's operations (email, export, feedback, playlist scores and
    # playlists, metrics, cleanup: 7) and the warehouse tables (7)
    assert int(proc.stdout.strip()) == 11 + 7 + 7


def test_jobs_and_schedules():
    from music_feedback.definitions import defs
    job = defs.resolve_job_def("music_feedback_daily_batch")
    assert job.partitions_def is not None
    schedule = defs.resolve_schedule_def("music_feedback_daily_batch_schedule")
    assert schedule.cron_schedule == "0 2 * * *"
    assert defs.resolve_schedule_def("music_feedback_weekly_retrain").cron_schedule == "0 4 * * 0"

    for name in ("music_feedback_daily_batch_schedule", "music_feedback_weekly_retrain"):
        assert defs.resolve_schedule_def(name).description
    # email waits for the stored batch and each marketplace's send time: a sensor, not a clock schedule
    email = defs.resolve_sensor_def("music_feedback_email_when_stored")
    assert email.job_name == "music_feedback_email_delivery" and "stored" in email.description
    assert not [s.name for s in defs.schedules if s.name.startswith("music_feedback_email")]


def test_every_schedule_and_sensor_starts_stopped():
    """The README says so and says how to turn them on."""
    from dagster import DefaultScheduleStatus, DefaultSensorStatus

    from music_feedback.definitions import defs
    assert {s.name for s in defs.schedules if s.default_status != DefaultScheduleStatus.STOPPED} == set()
    assert {s.name for s in defs.sensors if s.default_status != DefaultSensorStatus.STOPPED} == set()
    readme = (ROOT / "README.md").read_text()
    assert "dagster schedule start" in readme and "`sensor start`" in readme


def test_lineage_shows_the_warehouse_tables_each_stage_reads():
    from dagster import AssetKey

    from music_feedback.definitions import defs
    graph = defs.resolve_asset_graph()
    parents = graph.get(AssetKey(["music_feedback", "filtered_candidates"])).parent_keys
    assert {AssetKey(["warehouse", "listeners"]), AssetKey(["warehouse", "feedback_requests"])} <= parents
    assert AssetKey(["warehouse", "track_plays"]) in graph.get(AssetKey(["music_feedback", "raw_streams"])).parent_keys
    spec = graph.get(AssetKey(["warehouse", "listeners"]))
    assert not spec.is_materializable and "opted_out" in str(spec.metadata["dagster/column_schema"])


def test_partitions_start_at_the_configured_day_and_no_data_file_is_read(tmp_path, monkeypatch):
    """The partition set comes from partitionsStartDate, not from a warehouse on disk: loading the definitions
    opens no data file, and creates none in the data home."""
    from music_feedback.definitions import build_definitions
    from music_feedback.programs.loader import load_programs
    from music_feedback.warehouse.generator import WarehouseSpec
    home = tmp_path / "home"
    monkeypatch.setenv("MUSIC_FEEDBACK_HOME", str(home))
    monkeypatch.setenv("MUSIC_FEEDBACK_WAREHOUSE", str(tmp_path / "no-warehouse.duckdb"))
    defs = build_definitions()
    program = load_programs()[0]
    assert program.partitions_start_date == "2026-11-01"
    daily = defs.resolve_job_def("music_feedback_daily_batch").partitions_def
    weekly = defs.resolve_job_def("music_feedback_train_models").partitions_def
    assert daily.get_first_partition_key() == "2026-11-01"
    assert weekly.get_first_partition_key() == "2026-10-18"  # two weeks before: day 1 has a trained week
    assert not (tmp_path / "no-warehouse.duckdb").exists() and not home.exists()
    # a warehouse generated with the defaults (days ending yesterday) lies inside the partitions
    assert WarehouseSpec().start_date >= program.first_batch_day


def test_scoring_depends_on_both_models_through_the_week_that_made_its_champion():
    """The lineage shows a retrain's reach: scored_candidates of day D depends on the models' week
    week_for_day(D), the latest that ended by D; the daily job still runs without the models."""
    from datetime import date, timedelta

    from dagster import AssetKey

    from music_feedback.definitions import defs
    from music_feedback.defs.partitions import week_for_day
    graph = defs.resolve_asset_graph()
    scored = AssetKey(["music_feedback", "scored_candidates"])
    models = [AssetKey(["music_feedback", name])
              for name in ("feedback_propensity_model", "music_affinity_model")]
    assert set(models) <= graph.get(scored).parent_keys
    daily, weekly = graph.get(scored).partitions_def, graph.get(models[0]).partitions_def
    for model in models:
        mapping = graph.get_partition_mapping(scored, model)
        for day in (date(2026, 11, 22) + timedelta(days=n) for n in range(8)):  # Sunday to the next Sunday
            upstream = mapping.get_upstream_mapped_partitions_result_for_partitions(
                daily.subset_with_partition_keys([day.isoformat()]), daily, weekly).partitions_subset
            assert list(upstream.get_partition_keys()) == [week_for_day(day)], day
    selected = defs.resolve_job_def("music_feedback_daily_batch").asset_layer.executable_asset_keys
    assert scored in selected and not set(models) & set(selected)


AWS_VARIABLES = ("AWS_REGION", "AWS_DEFAULT_REGION", "MUSIC_FEEDBACK_S3_BUCKET", "MUSIC_FEEDBACK_REDSHIFT_HOST",
                 "MUSIC_FEEDBACK_REDSHIFT_USER", "MUSIC_FEEDBACK_REDSHIFT_PASSWORD", "MUSIC_FEEDBACK_SES_REGION")


def _aws_definitions(monkeypatch, **variables):
    from music_feedback.definitions import build_definitions
    monkeypatch.setenv("MUSIC_FEEDBACK_ENV", "aws")
    for name in AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    return build_definitions()


def test_the_aws_set_takes_its_required_settings_as_env_vars(monkeypatch):
    """Dagster is given the AWS set's required settings as EnvVar (the UI's resource page names the variables);
    the definitions load with them unset, and a resource resolves them when it starts."""
    from dagster import DagsterInvalidConfigError, EnvVar
    defs = _aws_definitions(monkeypatch)  # no AWS variable set: nothing is resolved at load
    r = defs.resources
    expected = {
        (r["io_manager"].bucket, "MUSIC_FEEDBACK_S3_BUCKET"), (r["lake"].bucket, "MUSIC_FEEDBACK_S3_BUCKET"),
        (r["model_registry"].bucket, "MUSIC_FEEDBACK_S3_BUCKET"),
        (r["warehouse"].redshift.host, "MUSIC_FEEDBACK_REDSHIFT_HOST"),
        (r["warehouse"].redshift.user, "MUSIC_FEEDBACK_REDSHIFT_USER"),
        (r["warehouse"].region_name, "AWS_REGION"), (r["io_manager"].region_name, "AWS_REGION"),
        (r["candidate_store"].region, "AWS_REGION"), (r["feedback_store"].region, "AWS_REGION"),
        (r["email_sender"].region, "AWS_REGION"), (r["score_cache"].region_name, "AWS_REGION"),
        (r["metrics_sink"].region_name, "AWS_REGION"), (r["event_publisher"].region_name, "AWS_REGION"),
    }
    for value, name in expected:
        assert isinstance(value, EnvVar) and value.env_var_name == name, (value, name)
    with pytest.raises(DagsterInvalidConfigError, match="MUSIC_FEEDBACK_S3_BUCKET"):
        r["io_manager"].process_config_and_initialize()  # a run launched without it fails naming it

    defs = _aws_definitions(monkeypatch, AWS_DEFAULT_REGION="eu-west-1", MUSIC_FEEDBACK_REDSHIFT_PASSWORD="s3cret",
                            MUSIC_FEEDBACK_SES_REGION="eu-central-1", MUSIC_FEEDBACK_S3_BUCKET="the-bucket")
    r = defs.resources
    assert r["lake"].region_name.env_var_name == "AWS_DEFAULT_REGION"  # the one that is set
    assert r["email_sender"].region.env_var_name == "MUSIC_FEEDBACK_SES_REGION"
    assert r["warehouse"].redshift.password.env_var_name == "MUSIC_FEEDBACK_REDSHIFT_PASSWORD"  # not its value
    assert r["candidate_store"].table_name == "music-feedback-candidates"  # a default stays a value
    started = r["io_manager"].process_config_and_initialize()  # what a run's launch does
    assert (started.bucket, started.region_name) == ("the-bucket", "eu-west-1")


def test_the_cli_takes_the_aws_set_with_values_read_now(monkeypatch):
    """Outside Dagster (the CLI, the service) the set holds the values, and a missing one fails naming it."""
    from music_feedback.aws.settings import AwsConfigError
    from music_feedback.resources import get_resources
    _aws_definitions(monkeypatch)
    with pytest.raises(AwsConfigError, match="AWS_REGION.*MUSIC_FEEDBACK_S3_BUCKET"):
        get_resources()
