"""`make bench`: every section's figures; the last line printed is one JSON object holding them all.

Each concern measures itself in a module of this package with `run(program, args) -> (figures, ok)`
and is listed in SECTIONS; the batch runs first because the others read the day it stores. A section sees
the figures of those before it as `args.figures`. MUSIC_FEEDBACK_BENCH_SECTIONS (`make bench
BENCH_SECTIONS=batch,scale`) runs some sections only, still in this order.
"""
from __future__ import annotations

import importlib
import json
import os

from music_feedback.programs.model import Program

SECTIONS = (
    "music_feedback_tools.bench.batch",
    "music_feedback_tools.bench.scoring",
    "music_feedback_tools.bench.serving",
    "music_feedback_tools.bench.delivery",
    "music_feedback_tools.bench.feedback_writes",  # the delivery section's ledger, before the day replaces it
    "music_feedback_tools.bench.day",
    "music_feedback_tools.bench.aws_day",
    "music_feedback_tools.bench.scale",  # last: minutes of a bigger day, after every 1x figure is in
)
SECTIONS_VAR = "MUSIC_FEEDBACK_BENCH_SECTIONS"


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


def selected() -> list[str]:
    """SECTIONS, or those named (by module name, comma-separated) in SECTIONS_VAR."""
    by_name = {module.rsplit(".", 1)[1]: module for module in SECTIONS}
    wanted = {w.strip() for w in os.environ.get(SECTIONS_VAR, "").split(",") if w.strip()}
    if wanted - by_name.keys():
        raise ValueError(f"{SECTIONS_VAR}: no section {sorted(wanted - by_name.keys())}; "
                         f"the sections: {', '.join(by_name)}")
    return [module for name, module in by_name.items() if not wanted or name in wanted]


def bench(program: Program, args) -> int:
    figures: dict = {}
    args.figures = figures
    ok = True
    sections = selected()
    for name in sections:
        section_figures, section_ok = importlib.import_module(name).run(program, args)
        figures.update(section_figures)
        ok = ok and section_ok
        if not section_ok:
            break  # later sections read what earlier ones produced
    for name in POLICY_KEYS if "music_feedback_tools.bench.day" in sections else ():
        figures.setdefault(name, None)  # null, not absent, when a failed section kept the audit from running
    print(json.dumps(figures))
    return 0 if ok else 1
