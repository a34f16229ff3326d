"""Run a program's jobs through the persistent Dagster instance, and summarise the daily batch.

`music-feedback run` launches each run from the code location as the UI and the schedules do
(`launching_from` and `music_feedback.launch`): the run carries its code location, so every view of the UI
shows it and Re-execute works. Elsewhere (tests, backfills, the bench's sections) a run executes in the
calling process with `dagster.execute_job` on the code location's job: it holds the job's snapshot, a code
origin and the partition's tags, so the job's Runs tab and partition status list it, but Dagster records a
run's code location only when a loaded code location launches it, so the Overview timeline leaves it out.
Only Dagster's public API is used either way.
"""
from __future__ import annotations

import os
import shutil
import time
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from dagster import (
    AssetKey,
    DagsterInstance,
    DagsterRunStatus,
    JobDefinition,
    MultiPartitionKey,
    build_reconstructable_job,
    execute_job,
)

from music_feedback import settings
from music_feedback.defs.partitions import week_for_day
from music_feedback.launch import CODE_LOCATION, REPOSITORY, DagsterServer
from music_feedback.programs.model import Program, ScoreBands
from music_feedback.resources import get_resources
from music_feedback.run_guard import HOST_TAG, PID_TAG, partition_lock, run_tags, settle_in_progress
from music_feedback.scoring.combine import band_labels

QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}  # the summary says what matters; the UI has the rest
REPO_DAGSTER_YAML = Path(__file__).resolve().parent.parent / "dagster.yaml"
PARTITION_TAG, PARTITION_SET_TAG = "dagster/partition", "dagster/partition_set"
REPOSITORY_LABEL_TAG, CODE_LOCATION_TAG = ".dagster/repository", "dagster/code_location"
REMOVED_STORAGE = "music_feedback.instance"


def instance() -> DagsterInstance:
    """The persistent instance in $DAGSTER_HOME (default: <data home>/dagster_home), so the UI sees runs.
    A home whose settings still name the event log this project once shipped (`music_feedback.instance`,
    removed) gets the repository's: Dagster's own storage reads the same files."""
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(settings.data_home() / "dagster_home")))
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if REPO_DAGSTER_YAML.exists() and (not config.exists() or REMOVED_STORAGE in config.read_text()):
        shutil.copy(REPO_DAGSTER_YAML, config)
        for template in (home / "history" / "runs").glob(".run-template-*.sqlite"):  # its new-run template
            template.unlink(missing_ok=True)
    return DagsterInstance.get()


def latest_complete_day(meta: dict[str, str]) -> date:
    """The warehouse's last generated day, else yesterday (UTC): today is not complete yet."""
    if meta.get("end_date"):
        return date.fromisoformat(meta["end_date"])
    return datetime.now(timezone.utc).date() - timedelta(days=1)


def check_batch_day(program: Program, day: date, meta: dict[str, str]) -> None:
    """Refuse, with the valid range, a day that is not a partition or that the warehouse has no plays for."""
    first = program.first_batch_day
    last = datetime.now(timezone.utc).date() - timedelta(days=1)
    if not first <= day <= last:
        raise ValueError(f"batch day {day} is not a complete day of program {program.program_id}: choose a day "
                         f"from {first} (the first partition: the program's partitionsStartDate) "
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
    registry = get_resources()["model_registry"]
    if not force and all(registry.champion_version(m.model_id, day) for m in program.scoring_models):
        return 0.0
    # lazy: the definitions: ~2 s, only when a run needs a job
    from music_feedback.definitions import training_job_name
    started = time.perf_counter()
    week = week_for_day(day)
    with partition_lock(settings.data_home() / "locks", training_job_name(program), week):
        result = execute(defs.resolve_job_def(training_job_name(program)), week, inst, run_tags())
    if not result.success:
        raise RuntimeError(f"training the models of {program.program_id} failed: {result.error}")
    return time.perf_counter() - started


def _first_error(events) -> str:
    """The user's error of a run's first failed step; `events` is the run's events or a result holding them."""
    for event in getattr(events, "all_events", events):
        if event.is_failure and event.event_specific_data is not None:
            err = getattr(event.event_specific_data, "error", None)
            while err is not None and err.cause is not None:  # the user's error, not Dagster's wrapper
                err = err.cause
            if err is not None:
                return err.message.strip()
    return "see the run in the Dagster UI"


_LOADED: dict[str, JobDefinition] = {}  # job name -> the definition this process last ran it from
_SERVER: ContextVar[DagsterServer | None] = ContextVar("music_feedback_launch_server", default=None)


def code_location_job(job_name: str, loaded: int | None = None) -> JobDefinition:
    """The job as the code location defines it: what a run's code origin points at (`execute_job` takes a
    reconstructable job, which another process rebuilds by calling this). In the process that ran it,
    `loaded` names the definition `execute` was given (the CLI's are the code location's own; a test's
    are built for its data home), so nothing is built twice; elsewhere it means nothing."""
    job = _LOADED.get(job_name)
    if job is None or id(job) != loaded:
        from music_feedback.definitions import defs  # lazy: only a run worker rebuilding the job needs it
        job = defs.resolve_job_def(job_name)
    return job


def partition_tags(job_name: str, partition_key: str) -> dict[str, str]:
    """The tags that make a run the partition's run: the partition (and each dimension's, for a multi-partition)
    and the job's partition set, as a schedule's or the UI's launch of that partition has them."""
    tags = {PARTITION_TAG: str(partition_key), PARTITION_SET_TAG: f"{job_name}_partition_set"}
    if isinstance(partition_key, MultiPartitionKey):
        tags.update({f"{PARTITION_TAG}/{dim}": key for dim, key in partition_key.keys_by_dimension.items()})
    return tags


def code_location_tags() -> dict[str, str]:
    """The code location's labels, which Dagster puts on the runs it launches from a code location: the
    UI lists a job's runs (its Runs tab, the partitions' status) by the job's name and the hidden
    repository label, and filters runs by `dagster/code_location`."""
    return {REPOSITORY_LABEL_TAG: f"{REPOSITORY}@{CODE_LOCATION}", CODE_LOCATION_TAG: CODE_LOCATION}


@dataclass
class RunOutcome:
    """A finished run as its events tell it, however it was launched."""
    run_id: str
    success: bool
    events: list  # the run's DagsterEvents, in order

    @property
    def materializations(self) -> dict[str, dict]:
        """Asset name -> the metadata values of its materialization in this run."""
        out = {}
        for event in self.events:
            if event.is_step_materialization:
                mat = event.event_specific_data.materialization
                out[mat.asset_key.path[-1]] = {k: _value(v) for k, v in mat.metadata.items()}
        return out

    @property
    def check_evaluations(self) -> list:
        return [e.event_specific_data for e in self.events if e.event_type_value == "ASSET_CHECK_EVALUATION"]

    @property
    def step_seconds(self) -> dict[str, float]:
        """Dagster step -> wall seconds (IO and checks included)."""
        return {e.step_key.split("__", 1)[-1]: round(e.event_specific_data.duration_ms / 1000, 3)
                for e in self.events if e.event_type_value == "STEP_SUCCESS"}

    @property
    def error(self) -> str | None:
        return None if self.success else _first_error(self.events)


@contextmanager
def launching_from(server: DagsterServer):
    """Within it, `execute` launches runs from the code location through `server` (the UI's path) instead of
    executing them in this process: `music-feedback run` takes it, so its runs are first-class in the UI."""
    token = _SERVER.set(server)
    try:
        yield server
    finally:
        _SERVER.reset(token)


def execute(job: JobDefinition, partition_key: str | None, inst: DagsterInstance, tags: dict,
            run_config: dict | None = None) -> RunOutcome:
    """One partition of `job` through the instance. Inside `launching_from`, launched from the code location
    as the UI launches it; otherwise in this process with `dagster.execute_job` (tests, backfills, the bench's
    sections): the run then holds the job's snapshot, a code origin (`code_location_job`) and the partition's
    and code location's tags. Outputs are not kept: the batch reads them back through the IO manager."""
    if job.partitions_def is not None and partition_key not in job.partitions_def.get_partition_keys():
        raise ValueError(f"{partition_key} is not a partition of {job.name}")
    run_config = run_config or QUIET
    tags = {**(partition_tags(job.name, partition_key) if partition_key is not None else {}), **tags}
    server = _SERVER.get()
    if server is not None:  # the run worker is not this process: the in-process guard's pid tags do not apply
        tags = {k: v for k, v in tags.items() if k not in (PID_TAG, HOST_TAG)}
        run_id = server.submit(job.name, run_config, tags)
        run = server.wait(run_id)
        events = [e.dagster_event for e in inst.all_logs(run_id) if e.is_dagster_event]
        return RunOutcome(run_id, run.status == DagsterRunStatus.SUCCESS, events)
    _LOADED[job.name] = job
    # Dagster caches a reconstructable job's definition by its pointer: another definition of the same job
    # (a test's, for another data home) needs a pointer of its own, or the cached one would run.
    recon = build_reconstructable_job(__name__, code_location_job.__name__, (job.name,), {"loaded": id(job)})
    result = execute_job(recon, instance=inst, run_config=run_config, raise_on_error=False,
                         tags={**code_location_tags(), **tags})
    return RunOutcome(result.run_id, result.success, list(result.all_events))


def run_batch(defs, program: Program, day: date, inst: DagsterInstance) -> BatchReport:
    # lazy: the definitions: ~2 s, only when a run needs a job
    from music_feedback.definitions import daily_job_name
    job = defs.resolve_job_def(daily_job_name(program))
    keys = job.partitions_def.get_partition_keys()
    if day.isoformat() not in keys:
        span = f"{keys[0]} to {keys[-1]}" if keys else "none yet"
        raise ValueError(f"{day} is not a partition of {job.name} (partitions: {span}); pick a day in that "
                         "range, or set the program's partitionsStartDate")
    started = time.perf_counter()
    with partition_lock(settings.data_home() / "locks", job.name, day.isoformat()):
        settle_in_progress(inst, job.name, day.isoformat())
        result = execute(job, day.isoformat(), inst, run_tags())
    report = BatchReport(program.program_id, day.isoformat(), result.success, time.perf_counter() - started,
                         assets=result.materializations, step_s=result.step_seconds, failure=result.error)
    for ev in result.check_evaluations:
        report.checks[f"{ev.asset_key.path[-1]}.{ev.check_name}"] = {
            "passed": ev.passed, "asset": ev.asset_key.path[-1], "description": ev.description}
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
