"""The AWS commands: `aws check`, `aws provision`, and `demo-aws` (a whole day on local stand-ins).

music_feedback.cli adds them to its parser (`add_aws_commands`), handing over the helpers they share with
its own commands; this module imports nothing from it.
"""
from __future__ import annotations

import argparse
import json
from datetime import date
from functools import partial
from typing import Callable
from music_feedback import settings


def _require_aws() -> None:
    if settings.get_env() != "aws":
        raise ValueError(f"{settings.ENV_VAR} is not 'aws': set it (and the AWS settings in the README) first")


def cmd_check(args) -> int:
    _require_aws()
    # lazy: `music-feedback --help` imports this module (~30 ms); preflight adds ~25 ms
    from music_feedback.aws.preflight import preflight
    # lazy: programs.loader adds ~1.1 s to `--help`
    from music_feedback.programs.loader import load_programs
    # lazy: resources adds ~1.5 s to `--help`
    from music_feedback.resources import get_resources
    preflight(get_resources(), load_programs())
    print("every AWS adapter is ready")
    return 0


def cmd_provision(args) -> int:
    _require_aws()
    # lazy: provision adds ~15 ms to `--help`'s ~30 ms
    from music_feedback.aws.provision import provision
    # lazy: aws.settings imports dagster (~0.5 s) into `--help`
    from music_feedback.aws.settings import AwsSettings
    # lazy: resources adds ~1.5 s to `--help`
    from music_feedback.resources import get_resources
    created = provision(AwsSettings.from_env(), get_resources())
    print("\n".join(f"created {c}" for c in created) or "everything existed already")
    return 0


def cmd_template(args) -> int:
    # lazy: infrastructure adds ~1.6 s to `--help`
    from music_feedback.aws.infrastructure import template
    print(json.dumps(template(), indent=2))
    return 0


def cmd_demo(args, pick_program: Callable, ensure_warehouse: Callable[[], dict[str, str]]) -> int:
    # lazy: runner imports dagster and the definitions' helpers (~1.5 s) into `--help`
    from music_feedback import runner, settings
    # a tool, not the product: imported only by its command
    # lazy: a tool, not the product: only its command imports it (test_layout)
    from music_feedback_tools.demo_aws import run_demo
    program = pick_program(args.program)
    meta = ensure_warehouse()
    day = args.date or runner.latest_complete_day(meta)
    runner.check_batch_day(program, day, meta)
    result = run_demo(program, day, settings.warehouse_path(), settings.data_home() / "aws-demo",
                      echo=lambda line: print(line, flush=True))
    report = result.report
    print("steps (s): " + ", ".join(f"{k} {v}" for k, v in report.steps.items()))
    print(f"set-up {result.setup_s}s, the day {result.day_s}s; time waiting on each adapter during the day:")
    for name, t in result.adapters.items():
        print(f"  {name:<32}{t['s']:>8.2f}s {t['calls']:>8,} calls")
    for step, names in result.adapters_by_step.items():
        print(f"  {step} ({report.steps.get(step)}s): " + ", ".join(f"{k} {v}s" for k, v in names.items()))
    if args.report_json:
        with open(args.report_json, "w") as f:
            json.dump({"success": report.success, "steps": report.steps, "funnel": result.funnel,
                       "adapters": result.adapters, "adapters_by_step": result.adapters_by_step,
                       "setup_s": result.setup_s, "day_s": result.day_s, "failure": report.failure}, f)
    return 0 if report.success else 1


def add_aws_commands(sub, pick_program: Callable, ensure_warehouse: Callable[[], dict[str, str]]) -> None:
    """The AWS commands on `sub`; `pick_program(id or None)` gives the program to run and `ensure_warehouse()`
    the embedded warehouse's metadata (the CLI's own, for `demo-aws`)."""
    aws = sub.add_parser("aws", help="the AWS adapter set (MUSIC_FEEDBACK_ENV=aws)").add_subparsers(
        dest="action", required=True)
    aws.add_parser("check", help="check credentials, region, endpoints, buckets, tables, indexes, the bus, the "
                                 "SageMaker endpoints and the warehouse; list every problem").set_defaults(func=cmd_check)
    aws.add_parser("provision", help="create the bucket, Glue database, DynamoDB tables and event bus if missing "
                                     "(a fresh account or stand-ins)").set_defaults(func=cmd_provision)
    aws.add_parser("template", help="print the CloudFormation template of the whole deployment, from the code "
                                    "and deploy/iam/ (deploy/infrastructure/template.json)").set_defaults(
        func=cmd_template)
    demo = sub.add_parser("demo-aws", help="a whole day on the AWS adapter set against local stand-ins")
    demo.add_argument("--program")
    demo.add_argument("--date", type=date.fromisoformat, help="batch day D (default: the warehouse's last day)")
    demo.add_argument("--report-json", help=argparse.SUPPRESS)
    demo.set_defaults(func=partial(cmd_demo, pick_program=pick_program, ensure_warehouse=ensure_warehouse))

