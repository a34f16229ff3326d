"""The whole-day section of `make bench`: `music-feedback run` on the default-scale day (the batch, the
export, the email to a fresh outbox, simulated listeners on the real endpoints, playlists, metrics), timed
in a child process like the batch, with each step's time. Then the contact promises over several days:
consecutive days at a small scale with unsubscribes, voice prompts on earlier batches, a held-out listener
and a sender killed mid-run, audited from the stores (`policy_*`, target 0 violations)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from music_feedback import runner, settings
from music_feedback_tools.bench import run_cli_json
from music_feedback.programs.model import Program
from music_feedback.warehouse.duckdb_warehouse import DuckDBWarehouse

POLICY_DAYS = 4
# 8,000 listeners and 16,000 plays a day: a week's promises cross days, channels and time zones at any
# scale, and four default-scale days would add some six minutes to the bench.
POLICY_SCALE = 0.01


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
    if report is None:  # the several days have a home of their own: their audit still comes
        return {"whole_day_failed": output, **policy_days(program)}, False
    args.embedded_funnel = report.get("funnel")  # the AWS section compares its day with this one
    steps = report["steps"]
    funnel = [ln for ln in output.splitlines() if ln.startswith("listeners:")]
    print("\n".join(funnel), file=sys.stderr)
    figures = {"whole_day_s": round(wall, 1), "export_s": steps.get("export"), "playlist_s": steps.get("playlists"),
               "metrics_s": steps.get("metrics"), "whole_day_steps_s": steps}
    figures.update(whole_day_audit(program))
    figures.update(policy_days(program))
    return figures, report["success"]


def whole_day_audit(program: Program) -> dict:
    """The default-scale day's own stores through the same audit (one day: the cap across days is the
    multi-day run's to show)."""
    from music_feedback_tools.simulate.audit import audit
    found = audit(program)
    return {"whole_day_policy_contacts": found["policy_contacts_examined"],
            "whole_day_policy_violations": found["policy_violations"]}


def policy_days(program: Program, days: int = POLICY_DAYS, scale: float = POLICY_SCALE,
                home: Path | None = None) -> dict:
    """`days` consecutive simulated days at `scale` in a data home and Dagster instance of their own (a
    fresh warehouse ending yesterday), in a child process, then the audit. The promises' figures are
    reported, not gated on: a violation is a finding of the bench, not a reason to skip later sections."""
    from music_feedback.warehouse.generator import WarehouseSpec, generate
    home = home or settings.data_home() / "policy_days"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    base = WarehouseSpec.scaled(scale)
    # the training history stays at its default size: with a few thousand outcomes the affinity model
    # sometimes fails to beat its baseline, and the days then have no champion to score with
    spec = WarehouseSpec(listeners=base.listeners, tracks=base.tracks, plays_per_day=base.plays_per_day,
                         outcomes=base.outcomes, days=days,
                         end_date=datetime.now(timezone.utc).date() - timedelta(days=1))
    generate(home / "warehouse.duckdb", spec, progress=False)
    out = Path(tempfile.mkdtemp()) / "policy.json"
    # the embedded adapters and the local outbox, whatever the bench's environment: the audit reads them
    env = {k: v for k, v in os.environ.items()
           if k not in (settings.CANDIDATE_STORE_VAR, "MUSIC_FEEDBACK_EMAIL_SERVICE", "MUSIC_FEEDBACK_SMTP_HOST")}
    env.update({settings.ENV_VAR: "local", settings.HOME_VAR: str(home),
                settings.WAREHOUSE_VAR: str(home / "warehouse.duckdb"), "DAGSTER_HOME": str(home / "dagster_home")})
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "music_feedback_tools.simulate.days", "--days", str(days), "--crashes",
                           "1", "--report-json", str(out)], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if not out.exists():
        print(proc.stdout[-3000:], proc.stderr[-3000:], file=sys.stderr)
        return {"policy_days_failed": (proc.stderr or proc.stdout)[-300:]}
    report = json.loads(out.read_text())
    audit = report["audit"]
    lines = proc.stdout.splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.startswith("audit of")), len(lines))
    print("\n".join(lines[start:]), file=sys.stderr)  # the audit's summary, one line per rule
    return {"policy_days": audit["policy_days"], "policy_contacts_examined": audit["policy_contacts_examined"],
            "policy_violations": audit["policy_violations"],
            "policy_violations_by_rule": {k: v["violations"] for k, v in audit["rules"].items()},
            "policy_scale": scale, "policy_days_s": round(wall, 1), "policy_days_ok": report["success"],
            "policy_crash_mid_send": any(c["mid_send"] for c in report["crashes"])}
