"""The batch section of `make bench`: the default-scale day through Dagster, checks included.

The batch runs in a child process so its peak RSS is measured alone; generating the warehouse and
training the models happen before it and are reported apart. `measure` also serves the scale section.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

from music_feedback import runner, settings
from music_feedback.programs.model import Program
from music_feedback.warehouse.generator import WarehouseSpec
from music_feedback_tools.bench import warehouse

# The seed's removals as shares of its 1.5M unique candidates, to compare the generated day against.
SEED_SHARES = {"trust": 100_000 / 1.5e6, "eligibility": 400_000 / 1.5e6, "engagement": 500_000 / 1.5e6,
               "frequency-cap": 300_000 / 1.5e6}
STAGES = ("raw_streams", "unified_candidates", "filtered_candidates", "listener_features", "track_features",
          "scored_candidates", "stored_candidates")


def _child(cmd: list[str]) -> tuple[int, float, float]:
    """Run a child process; (exit code, wall seconds, its peak RSS in MB). ru_maxrss of RUSAGE_CHILDREN is
    the largest child so far, so each measured child runs in its own wrapper process."""
    wrapper = [sys.executable, "-c", (
        "import resource, subprocess, sys, time; t = time.perf_counter(); "
        "rc = subprocess.run(sys.argv[1:]).returncode; "
        "print('CHILD', rc, time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)"
    ), *cmd]
    out = subprocess.run(wrapper, env=os.environ.copy(), stdout=subprocess.PIPE, text=True)
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("CHILD ")][-1].split()
    return int(line[1]), float(line[2]), float(line[3])


def _home(scale: float) -> None:
    """A home of its own per scale, so the bench neither replaces nor mixes with the data `make run` uses;
    another scale also gets its own Dagster instance, or the row-count checks would compare its day with
    the 1x day's counts in the shared run history (and rightly fail)."""
    base = Path(os.environ.setdefault("MUSIC_FEEDBACK_BENCH_BASE", str(settings.data_home())))
    os.environ.setdefault("MUSIC_FEEDBACK_BENCH_DAGSTER_HOME", os.environ.get("DAGSTER_HOME", ""))
    os.environ.pop("MUSIC_FEEDBACK_WAREHOUSE", None)
    if scale == 1:
        os.environ["MUSIC_FEEDBACK_HOME"] = str(base / "bench")
        if os.environ["MUSIC_FEEDBACK_BENCH_DAGSTER_HOME"]:
            os.environ["DAGSTER_HOME"] = os.environ["MUSIC_FEEDBACK_BENCH_DAGSTER_HOME"]
        return
    home = base / "bench" / f"scale{scale:g}"
    instance = home / "dagster_home"
    instance.mkdir(parents=True, exist_ok=True)
    shared = Path(os.environ["MUSIC_FEEDBACK_BENCH_DAGSTER_HOME"] or ".") / "dagster.yaml"
    if shared.is_file() and not (instance / "dagster.yaml").exists():
        shutil.copy(shared, instance / "dagster.yaml")
    os.environ["MUSIC_FEEDBACK_HOME"], os.environ["DAGSTER_HOME"] = str(home), str(instance)


RUNS = 3  # run-to-run spread on a shared 2-core machine is about a second: medians of three, as the issue measured
# The plain process (`bench --limit`) holds the whole day in memory, 4.4 GB at 4x: above this scale it
# would not fit the machine, so the comparison (`limit_*`) is left out there.
LIMIT_MAX_SCALE = 4


def measure(program: Program, scale: float) -> tuple[dict, bool]:
    """The day at `scale` through Dagster, then the same work by `bench --limit`, RUNS times each in a child
    process; the figures are the medians (the run of median wall time gives its step times and counts).
    The 1x home is current again afterwards, as the later sections expect."""
    _home(scale)
    try:
        return _measure(program, scale)
    finally:
        _home(1)


def _measure(program: Program, scale: float) -> tuple[dict, bool]:
    for name in ("feedback.sqlite", "feedback.sqlite-wal", "feedback.sqlite-shm"):
        # a fresh program: no earlier bench's sends or answers, which the plain process (--limit) does not read
        (settings.data_home() / name).unlink(missing_ok=True)
    spec = WarehouseSpec.scaled(scale)
    meta, gen_s = warehouse.ensure(spec, scale)
    day = runner.latest_complete_day(meta)
    from music_feedback.definitions import build_definitions
    train_s = runner.ensure_models(build_definitions(), program, runner.instance(), force=True, day=day)
    ui = _ui_launch(program, day) if scale == 1 else {}
    with tempfile.TemporaryDirectory() as tmp:
        runs, failure = _batch_runs(program, day, Path(tmp) / "report.json")
        if failure is not None:
            print(f"the batch at scale {scale:g} failed: {failure}", file=sys.stderr)
            return {"batch_date": day.isoformat(), "batch_failed": failure}, False
        limits = _limit_runs(program, day, Path(tmp) / "limit.json") if scale <= LIMIT_MAX_SCALE else []
    report = sorted(runs, key=lambda r: r[0]["wall_s"])[len(runs) // 2][0]
    limit = sorted(limits, key=lambda r: r[1])[len(limits) // 2][0] if limits else {}
    figures = _figures(report, day, median(r[1] for r in runs), median(r[2] for r in runs), train_s, gen_s, limit,
                       median(r[1] for r in limits) if limits else None,
                       median(r[2] for r in limits) if limits else None)
    figures.update(ui)
    if ui.get("ui_launch_batch_s"):  # target: at most twice the batch through `music-feedback run`
        figures["ui_launch_ratio"] = round(ui["ui_launch_batch_s"] / figures["batch_wall_s"], 2)
    for name in ("ui_launch_batch_s", "ui_launch_start_s", "ui_launch_ratio"):
        if name in figures:
            print(f"{name:>22}: {figures[name]}")
    figures.update({"machine_calibration_s": _calibration(),
                    "batch_wall_runs_s": [round(r[0]["wall_s"], 2) for r in runs],
                    "process_wall_runs_s": [round(r[1], 2) for r in runs],
                    "peak_rss_runs_mb": [round(r[2], 1) for r in runs],
                    "limit_process_wall_runs_s": [round(r[1], 2) for r in limits] or None})
    return figures, all(r[0]["success"] for r in runs)


def _calibration() -> float:
    """Seconds for a fixed CPU task (a pure-Python loop, then NumPy sorts; the median of three), measured
    after the batch's runs: a shared machine's speed moves by up to ~2x from hour to hour, and this says
    how fast it was when the figures were taken (lower is faster)."""
    import numpy as np
    values = np.random.default_rng(0).random(5_000_000)
    times = []
    for _ in range(3):
        started, total = time.perf_counter(), 0
        for i in range(5_000_000):
            total += i
        for _ in range(5):
            np.sort(values)
        times.append(time.perf_counter() - started)
    return round(median(times), 3)


def _ui_launch(program: Program, day) -> dict:
    """The day launched as the Dagster UI launches it (bench/ui_launch.py: `ui_launch_batch_s`), before the
    measured runs, so that whatever it leaves in the store they replace; the same day taken out first."""
    from music_feedback_tools.bench import ui_launch
    from music_feedback.definitions import daily_job_name
    _unstore(program, day)
    return ui_launch.measure(daily_job_name(program), day.isoformat())


def _batch_runs(program: Program, day, out: Path) -> tuple[list, str | None]:
    """RUNS x (the run's report, process wall, peak RSS); or the first failure."""
    runs = []
    for _ in range(RUNS):
        _unstore(program, day)
        rc, process_s, peak_mb = _child([sys.executable, "-m", "music_feedback.cli", "run", "--program",
                                         program.program_id, "--date", day.isoformat(), "--report-json", str(out),
                                         "--no-email", "--in-process"])  # the run's own work, in the measured process
        if rc != 0 or not out.exists():
            failure = json.loads(out.read_text()).get("failure") if out.exists() else None
            return runs, failure or "see above"
        runs.append((json.loads(out.read_text()), process_s, peak_mb))
        out.unlink()
    return runs, None


def _limit_runs(program: Program, day, out: Path) -> list:
    """RUNS x (the plain process's report, its wall, its peak RSS)."""
    limits = []
    for _ in range(RUNS):
        _unstore_limit()
        rc, wall_s, peak_mb = _child([sys.executable, "-m", "music_feedback.cli", "bench", "--limit", "--program",
                                      program.program_id, "--date", day.isoformat(), "--limit-out", str(out)])
        limits.append((json.loads(out.read_text()) if rc == 0 and out.exists() else {}, wall_s, peak_mb))
    return limits


def _unstore(program: Program, day) -> None:
    """Take the day out of both stores and empty the score cache first, so each run stores and scores a new
    day as the daily schedule does: a re-run would also drop the old table and carry over the statuses an
    earlier bench's deliveries set, and would find every pair scored by the run before it (a new generated
    day finds ~1% of its pairs cached, see the scoring section)."""
    import polars as pl

    from music_feedback.resources import candidate_store
    from music_feedback.store.base import CANDIDATE_SCHEMA
    candidate_store().put_batch(program.program_id, day.isoformat(), pl.DataFrame(schema=CANDIDATE_SCHEMA))
    shutil.rmtree(settings.score_cache_path(), ignore_errors=True)
    _unstore_limit()


def _unstore_limit() -> None:
    """The plain process's own store, which it fills anew each run (and the later sections never read)."""
    for name in ("limit_candidates.sqlite", "limit_candidates.sqlite-wal", "limit_candidates.sqlite-shm"):
        (settings.data_home() / name).unlink(missing_ok=True)


def run(program: Program, args) -> tuple[dict, bool]:
    """The 1x day (another scale is the scale section's)."""
    return measure(program, 1)


def _figures(report: dict, day, process_s: float, peak_mb: float, train_s: float, gen_s: float, limit: dict,
             limit_s: float | None, limit_mb: float | None) -> dict:
    assets = report["assets"]

    def m(asset, name, default=None):
        return assets.get(asset, {}).get(name, default)

    figures = {
        "batch_date": day.isoformat(),
        "raw_records": (m("raw_streams", "dagster/row_count") or 0) + (m("raw_streams", "rejected_rows") or 0),
        "rejected_records": m("rejected_streams", "dagster/row_count"),
        "unique_candidates": m("unified_candidates", "dagster/row_count"),
        "eligible_candidates": m("filtered_candidates", "dagster/row_count"),
        # the funnel: the share of the unified pairs the filter chain keeps (each filter's removed share below)
        "funnel_kept_share": _share(m("filtered_candidates", "dagster/row_count"),
                                    m("filtered_candidates", "input_rows")),
        "stored_candidates": m("stored_candidates", "candidates"),
        "stored_rows": m("stored_candidates", "dagster/row_count"),
        "removed_by_filter": m("filtered_candidates", "removed_by_filter"),
        "removed_share_by_filter": m("filtered_candidates", "removed_share_by_filter"),
        "score_distribution": m("scored_candidates", "score_distribution"),
        "checks_passed": sum(c["passed"] for c in report["checks"].values()),
        "checks": len(report["checks"]),
        "compute_s": {s: m(s, "duration_s") for s in STAGES},
        "step_s": report["step_s"],
        "batch_wall_s": round(report["wall_s"], 2),
        "process_wall_s": round(process_s, 2),
        "peak_rss_mb": round(peak_mb, 1),
        # The checks are judged in a worker process of the batch (quality/gx_worker.py): its own peak.
        "gx_worker_peak_rss_mb": report.get("gx_worker_peak_rss_mb"),
        "train_models_s": round(train_s, 2),
        "warehouse_s": round(gen_s, 2),
        "limit_process_wall_s": round(limit_s, 2) if limit_s else None,
        "limit_peak_rss_mb": round(limit_mb, 1) if limit_mb else None,
        "limit_ratio": round(process_s / limit_s, 2) if limit_s else None,
        "limit_stage_s": limit.get("limit_stage_s"),
        "limit_stored_rows_match": (limit.get("limit_stored_rows") == m("stored_candidates", "dagster/row_count")
                                    if limit else None),
    }
    for name, share in (figures["removed_share_by_filter"] or {}).items():
        seed = SEED_SHARES.get(name)
        if seed:
            off = share / seed - 1
            print(f"{'filter ' + name:>22}: removed {share:.1%} (seed {seed:.1%}, {off:+.0%} relative)")
    for name, value in figures.items():
        if name not in ("removed_by_filter", "removed_share_by_filter", "compute_s", "step_s", "score_distribution",
                        "limit_stage_s"):
            print(f"{name:>22}: {value}")
    return figures


def _share(part, whole) -> float | None:
    return round(part / whole, 4) if part is not None and whole else None
