"""`make bench`: every section's figures; the last line printed is one JSON object holding them all.

Each concern measures itself in a module of this package with `run(program, args) -> (figures, ok)`
and is listed in SECTIONS; the batch runs first because the others read the day it stores.
"""
from __future__ import annotations

import importlib
import json

from music_feedback.programs.model import Program

SECTIONS = (
    "music_feedback_tools.bench.batch",
    "music_feedback_tools.bench.scoring",
    "music_feedback_tools.bench.serving",
    "music_feedback_tools.bench.delivery",
    "music_feedback_tools.bench.feedback_writes",  # the delivery section's ledger, before the day replaces it
    "music_feedback_tools.bench.day",
    "music_feedback_tools.bench.aws_day",
)


# The contact promises' audit over several simulated days (the day section): target 0 violations.
POLICY_KEYS = ("policy_days", "policy_contacts_examined", "policy_violations")


def run_cli_json(command: list[str]) -> tuple[dict | None, float, str]:
    """`music-feedback <command> --report-json F` in a child process: (the report or None, wall seconds,
    the end of its output for a failure message)."""
    import subprocess
    import sys
    import tempfile
    import time
    from pathlib import Path
    out = Path(tempfile.mkdtemp()) / "report.json"
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "music_feedback.cli", *command, "--report-json", str(out)],
                          capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0 or not out.exists():
        print(proc.stdout[-3000:], proc.stderr[-3000:], file=sys.stderr)
        return None, wall, (proc.stderr or proc.stdout)[-300:]
    return json.loads(out.read_text()), wall, proc.stdout


def bench(program: Program, args) -> int:
    figures: dict = {}
    ok = True
    for name in SECTIONS:
        section_figures, section_ok = importlib.import_module(name).run(program, args)
        figures.update(section_figures)
        ok = ok and section_ok
        if not section_ok:
            break  # later sections read what earlier ones produced
    for name in POLICY_KEYS:  # null, not absent, when a failed section kept the audit from running
        figures.setdefault(name, None)
    print(json.dumps(figures))
    return 0 if ok else 1
