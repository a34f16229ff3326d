"""The AWS section of `make bench`: the whole day of the day section again, on the AWS adapter set against
the local stand-ins (`music-feedback demo-aws` in a child process), with the time spent waiting on each
adapter, and whether its funnel equals the embedded day's."""
from __future__ import annotations

import sys

from music_feedback import runner, settings
from music_feedback_tools.bench import run_cli_json
from music_feedback.programs.model import Program
from music_feedback.warehouse.duckdb_warehouse import DuckDBWarehouse


def run(program: Program, args) -> tuple[dict, bool]:
    day = runner.latest_complete_day(DuckDBWarehouse(path=str(settings.warehouse_path())).meta())
    report, wall, output = run_cli_json(["demo-aws", "--program", program.program_id, "--date", day.isoformat()])
    if report is None:
        return {"aws_day_failed": output}, False
    embedded = getattr(args, "embedded_funnel", None)
    figures = {"aws_day_s": report["day_s"], "aws_day_setup_s": report["setup_s"], "aws_day_wall_s": round(wall, 1),
               "aws_day_steps_s": report["steps"],
               "aws_day_adapter_s": {k: v["s"] for k, v in report["adapters"].items()},
               "aws_day_step_adapter_s": report.get("adapters_by_step", {}),
               "aws_day_funnel_equal": None if embedded is None else report["funnel"] == embedded}
    if embedded is not None and report["funnel"] != embedded:
        diff = {k: (embedded.get(k), report["funnel"].get(k)) for k in set(embedded) | set(report["funnel"])
                if embedded.get(k) != report["funnel"].get(k)}
        print(f"the AWS day's funnel differs from the embedded day's (embedded, aws): {diff}", file=sys.stderr)
    return figures, report["success"]
