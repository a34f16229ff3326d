"""The whole-day section of `make bench`: `music-feedback run` on the default-scale day (the batch, the
export, the email to a fresh outbox, simulated listeners on the real endpoints, playlists, metrics), timed
in a child process like the batch, with each step's time."""
from __future__ import annotations

import shutil
import sys

from music_feedback import runner, settings
from music_feedback.bench import run_cli_json
from music_feedback.programs.model import Program
from music_feedback.warehouse.duckdb_warehouse import DuckDBWarehouse


def run(program: Program, args) -> tuple[dict, bool]:
    day = runner.latest_complete_day(DuckDBWarehouse(path=str(settings.warehouse_path())).meta())
    home = settings.data_home()
    shutil.rmtree(home / "outbox", ignore_errors=True)  # a fresh day of email: the ledger and outbox anew
    # a fresh program: no ledger, and candidates without earlier bench days' statuses (a re-run batch keeps
    # them, so the voice channel would find nothing pending); the serving section refills its history. And
    # an empty score cache, as the AWS day starts with: the scoring section's runs of D-1 and D leave cached
    # D-1 scores that D would reuse, and a few changed scores change which candidates the email selects.
    for name in ("feedback.sqlite", "candidates.sqlite"):
        for suffix in ("", "-wal", "-shm"):
            (home / f"{name}{suffix}").unlink(missing_ok=True)
    shutil.rmtree(settings.score_cache_path(), ignore_errors=True)
    report, wall, output = run_cli_json(["run", "--program", program.program_id, "--date", day.isoformat()])
    if report is None:
        return {"whole_day_failed": output}, False
    args.embedded_funnel = report.get("funnel")  # the AWS section compares its day with this one
    steps = report["steps"]
    funnel = [ln for ln in output.splitlines() if ln.startswith("listeners:")]
    print("\n".join(funnel), file=sys.stderr)
    return {"whole_day_s": round(wall, 1), "export_s": steps.get("export"), "playlist_s": steps.get("playlists"),
            "metrics_s": steps.get("metrics"), "whole_day_steps_s": steps}, report["success"]
