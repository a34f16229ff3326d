"""Run a program's daily batch in-process against the persistent Dagster instance, and summarise it."""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from dagster import AssetKey, DagsterInstance

from music_feedback import settings
from music_feedback.programs.model import Program, ScoreBands

QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}  # the summary says what matters; the UI has the rest
EVENT_BATCH_SIZE = "100"
REPO_DAGSTER_YAML = Path(__file__).resolve().parent.parent / "dagster.yaml"


def instance() -> DagsterInstance:
    """The persistent instance in $DAGSTER_HOME (default: <data home>/dagster_home), so the UI sees runs."""
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(settings.data_home() / "dagster_home")))
    # Dagster then hands the events it plans at a run's start to the event log as one batch (Makefile: the UI)
    os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", EVENT_BATCH_SIZE)
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists() and REPO_DAGSTER_YAML.exists():
        shutil.copy(REPO_DAGSTER_YAML, home / "dagster.yaml")
    return DagsterInstance.get()


def latest_complete_day(meta: dict[str, str]) -> date:
    """The warehouse's last generated day, else yesterday (UTC): today is not complete yet."""
    if meta.get("end_date"):
        return date.fromisoformat(meta["end_date"])
    return datetime.now(timezone.utc).date() - timedelta(days=1)


def check_batch_day(program: Program, day: date, meta: dict[str, str]) -> None:
    """Refuse, with the valid range, a day that is not a partition or that the warehouse has no plays for."""
    from music_feedback.assets.common import partitions_start
    first = partitions_start(program)
    last = datetime.now(timezone.utc).date() - timedelta(days=1)
    if not first <= day <= last:
        raise ValueError(f"batch day {day} is not a complete day of program {program.program_id}: choose a day "
                         f"from {first} (the first partition: partitionsStartDate, else the warehouse's first day) "
                         f"to {last} (yesterday, UTC)")
    if meta.get("start_date") and meta.get("end_date"):
        start, end = date.fromisoformat(meta["start_date"]), date.fromisoformat(meta["end_date"])
        if not start <= day <= end:
            raise ValueError(f"the warehouse holds plays for {start}..{end}, not {day}: pass --date in that range "
                             f"or regenerate it with `music-feedback warehouse seed --force --end-date {day}`")


@dataclass
class BatchReport:
    program_id: str
    partition: str
    success: bool
    wall_s: float
    assets: dict[str, dict] = field(default_factory=dict)  # asset name -> metadata values
    checks: dict[str, dict] = field(default_factory=dict)  # "asset.check" -> {passed, asset, description}
    step_s: dict[str, float] = field(default_factory=dict)  # Dagster step -> wall seconds (IO and checks included)
    gx_worker_peak_rss_mb: float | None = None  # the process that judged the checks, when one did
    failure: str | None = None

    def meta(self, asset: str, name: str, default=None):
        return self.assets.get(asset, {}).get(name, default)


def _value(v):
    v = getattr(v, "value", getattr(v, "data", v))
    if hasattr(v, "columns") and not isinstance(v, (dict, list)):  # a TableSchema: its column names
        return [c.name for c in v.columns]
    return v


def ensure_models(defs, program: Program, inst: DagsterInstance, *, day: date, force: bool = False) -> float:
    """Run the weekly retrain of the latest week ending on or before `day` unless both models already
    have a champion for that day; returns seconds spent. `day` is required: a champion trained today is
    too new for a past day. Decided from the model registry (what exists), not run history: a shared
    DAGSTER_HOME with a new data home has history but no models."""
    from music_feedback.assets.models import week_for_day
    from music_feedback.resources import get_resources
    registry = get_resources()["model_registry"]
    if not force and all(registry.champion_version(m.model_id, day) for m in program.scoring_models):
        return 0.0
    from music_feedback.definitions import training_job_name
    from music_feedback.run_guard import partition_lock, run_tags
    started = time.perf_counter()
    week = week_for_day(day)
    with partition_lock(settings.data_home() / "locks", training_job_name(program), week):
        result = defs.resolve_job_def(training_job_name(program)).execute_in_process(
            instance=inst, raise_on_error=False, run_config=QUIET, partition_key=week, tags=run_tags())
    if not result.success:
        raise RuntimeError(f"training the models of {program.program_id} failed: {_first_error(result)}")
    return time.perf_counter() - started


def _first_error(result) -> str:
    for event in result.all_events:
        if event.is_failure and event.event_specific_data is not None:
            err = getattr(event.event_specific_data, "error", None)
            while err is not None and err.cause is not None:  # the user's error, not Dagster's wrapper
                err = err.cause
            if err is not None:
                return err.message.strip()
    return "see the run in the Dagster UI"


def execute_in_process(job, partition_key: str, inst: DagsterInstance, tags: dict):
    """JobDefinition.execute_in_process without its output capture: that keeps every step's output
    (1.5M-row frames) alive until the run ends so `output_for_node` can return it, which the batch
    never calls; its outputs are read back through the IO manager. Same ephemeral job, tags and events."""
    from dagster._core.definitions.job_base import InMemoryJob
    from dagster._core.execution.execute_in_process import core_execute_in_process, merge_run_tags
    ephemeral = job.as_ephemeral_job(resource_defs={}, input_values={})
    return core_execute_in_process(
        job=InMemoryJob(job_def=ephemeral), run_config=QUIET, instance=inst, output_capturing_enabled=False,
        raise_on_error=False, run_tags=merge_run_tags(job_def=job, partition_key=partition_key, tags=tags,
                                                      asset_selection=None, instance=inst, run_config=QUIET))


def run_batch(defs, program: Program, day: date, inst: DagsterInstance) -> BatchReport:
    from music_feedback.definitions import daily_job_name
    from music_feedback.run_guard import partition_lock, run_tags, settle_in_progress
    job = defs.resolve_job_def(daily_job_name(program))
    keys = job.partitions_def.get_partition_keys()
    if day.isoformat() not in keys:
        span = f"{keys[0]} to {keys[-1]}" if keys else "none yet"
        raise ValueError(f"{day} is not a partition of {job.name} (partitions: {span}); pick a day in that "
                         "range, or set the program's partitionsStartDate")
    started = time.perf_counter()
    with partition_lock(settings.data_home() / "locks", job.name, day.isoformat()):
        settle_in_progress(inst, job.name, day.isoformat())
        result = execute_in_process(job, day.isoformat(), inst, run_tags())
    report = BatchReport(program.program_id, day.isoformat(), result.success, time.perf_counter() - started)
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        report.assets[mat.asset_key.path[-1]] = {k: _value(v) for k, v in mat.metadata.items()}
    for ev in result.get_asset_check_evaluations():
        report.checks[f"{ev.asset_key.path[-1]}.{ev.check_name}"] = {
            "passed": ev.passed, "asset": ev.asset_key.path[-1], "description": ev.description}
    for event in result.all_events:
        if event.event_type_value == "STEP_SUCCESS":
            report.step_s[event.step_key.split("__", 1)[-1]] = round(event.event_specific_data.duration_ms / 1000, 3)
    if not result.success:
        report.failure = _first_error(result)
    return report


def summary(report: BatchReport, bands: ScoreBands = ScoreBands()) -> str:
    """`bands`: the program's metrics.scoreBands, whose edges the daily report names too."""
    lines = [f"{report.program_id} batch for {report.partition}: "
             f"{'succeeded' if report.success else 'FAILED'} in {report.wall_s:.1f}s"]
    for name in ("raw_streams", "rejected_streams", "unified_candidates", "filtered_candidates",
                 "candidate_decisions", "listener_features", "track_features", "scored_candidates",
                 "stored_candidates"):
        if name in report.assets:
            m = report.assets[name]
            lines.append(f"  {name:<22} {m.get('dagster/row_count', '?'):>10} rows  {m.get('duration_s', 0):>7.2f}s")
    removed = report.meta("filtered_candidates", "removed_by_filter")
    if removed:
        lines.append("  removed by filter: " + ", ".join(f"{k} {v:,}" for k, v in removed.items()))
    dist = report.meta("scored_candidates", "score_distribution")
    if dist:
        from music_feedback.scoring.combine import band_labels
        labels = band_labels(bands)
        lines.append("  score bands: " + ", ".join(f"{labels.get(k, k)} {v:.0%}" for k, v in dist.items()))
    failed = [f"{n} ({c['description']})" for n, c in report.checks.items() if not c["passed"]]
    lines.append(f"  checks: {len(report.checks) - len(failed)}/{len(report.checks)} passed"
                 + (f"; failed: {', '.join(failed)}" if failed else ""))
    if report.failure:
        lines.append(f"  error: {report.failure}")
    return "\n".join(lines)


def asset_key_str(k: AssetKey) -> str:
    return "/".join(k.path)
