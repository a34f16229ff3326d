"""The batch section of `make bench`: the default-scale day through Dagster, checks included.

The batch runs in a child process so its peak RSS is measured alone; generating the warehouse and
training the models happen before it and are reported apart.
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from music_feedback import runner, settings
from music_feedback.programs.model import Program
from music_feedback.warehouse.duckdb_warehouse import DuckDBWarehouse
from music_feedback.warehouse.generator import WarehouseSpec, generate

# The seed's removals as shares of its 1.5M unique candidates, to compare the generated day against.
SEED_SHARES = {"trust": 100_000 / 1.5e6, "eligibility": 400_000 / 1.5e6, "engagement": 500_000 / 1.5e6,
               "frequency-cap": 300_000 / 1.5e6}
STAGES = ("raw_streams", "unified_candidates", "filtered_candidates", "listener_features", "track_features",
          "scored_candidates", "stored_candidates")


def _warehouse() -> tuple[dict, float]:
    path = settings.warehouse_path()
    started = time.perf_counter()
    meta = DuckDBWarehouse(path=str(path)).meta() if path.exists() else {}
    if int(meta.get("listeners", 0)) != WarehouseSpec().listeners:
        print(f"generating the default-scale warehouse at {path} (not counted)", file=sys.stderr)
        generate(path, WarehouseSpec())
        meta = DuckDBWarehouse(path=str(path)).meta()
    return meta, time.perf_counter() - started


def run(program: Program, args) -> tuple[dict, bool]:
    # A home of its own, so the bench neither replaces nor mixes with the data `make run` uses.
    os.environ["MUSIC_FEEDBACK_HOME"] = str(settings.data_home() / "bench")
    os.environ.pop("MUSIC_FEEDBACK_WAREHOUSE", None)
    meta, gen_s = _warehouse()
    day = runner.latest_complete_day(meta)
    from music_feedback.definitions import defs
    train_s = runner.ensure_models(defs, program, runner.instance(), force=True, day=day)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report.json"
        cmd = [sys.executable, "-m", "music_feedback.cli", "run", "--program", program.program_id,
               "--date", day.isoformat(), "--report-json", str(out)]
        started = time.perf_counter()
        proc = subprocess.run(cmd, env=os.environ.copy())
        process_s = time.perf_counter() - started
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        if proc.returncode != 0 or not out.exists():
            print("the batch failed; see above", file=sys.stderr)
            return {"batch_date": day.isoformat(), "batch_failed": True}, False
        report = json.loads(out.read_text())
    assets = report["assets"]

    def m(asset, name, default=None):
        return assets.get(asset, {}).get(name, default)

    figures = {
        "batch_date": day.isoformat(),
        "raw_records": m("raw_streams", "extracted_rows"),
        "rejected_records": m("rejected_streams", "dagster/row_count"),
        "unique_candidates": m("unified_candidates", "dagster/row_count"),
        "eligible_candidates": m("filtered_candidates", "dagster/row_count"),
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
        "train_models_s": round(train_s, 2),
        "warehouse_s": round(gen_s, 2),
    }
    for name, share in (figures["removed_share_by_filter"] or {}).items():
        seed = SEED_SHARES.get(name)
        if seed:
            off = share / seed - 1
            print(f"{'filter ' + name:>22}: removed {share:.1%} (seed {seed:.1%}, {off:+.0%} relative)")
    for name, value in figures.items():
        if name not in ("removed_by_filter", "removed_share_by_filter", "compute_s", "step_s", "score_distribution"):
            print(f"{name:>22}: {value}")
    return figures, bool(report["success"])
