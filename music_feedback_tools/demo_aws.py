"""`make demo-aws`: a whole day on the AWS adapter set, against local stand-ins, from one command.

The stand-ins start on free loopback ports, everything the adapters need is provisioned, the models are
trained into the S3 registry and served behind the SageMaker front, the preflight runs, and then the day
runs exactly as the schedules would run it. Nothing outside this machine is touched."""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path


@dataclass
class DemoResult:
    report: object  # simulate.day.DayReport
    funnel: dict[str, int]
    adapters: dict[str, dict] = field(default_factory=dict)
    adapters_by_step: dict[str, dict[str, float]] = field(default_factory=dict)
    setup_s: float = 0.0
    day_s: float = 0.0


def run_demo(program, day: date, warehouse: Path, home: Path, echo=print) -> DemoResult:
    """Run `day` of `program` on the AWS set; `warehouse` is the DuckDB file loaded into the Redshift
    stand-in; `home` holds the demo's local files and is emptied first."""
    from music_feedback import runner
    from music_feedback.aws.preflight import preflight
    from music_feedback.aws.provision import provision
    from music_feedback.aws.settings import AwsSettings
    from music_feedback.aws.timing import timed_adapters
    from music_feedback.definitions import build_definitions
    from music_feedback.resources import get_resources
    from music_feedback_tools.simulate.day import funnel_counts, run_day
    from music_feedback_tools.standins.stack import aws_standins, environ, sagemaker_endpoints

    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    started = time.perf_counter()
    echo(f"starting the stand-ins (moto, DynamoDB Local, PostgreSQL with {warehouse.name}, SES v2)")
    with aws_standins(home, warehouse) as env, environ(env), timed_adapters() as times:
        settings, resources = AwsSettings.from_env(), get_resources()
        for line in provision(settings, resources):
            echo(f"provisioned {line}")
        defs, inst = build_definitions(), runner.instance()
        trained = runner.ensure_models(defs, program, inst, day=day)
        echo(f"trained the models into {resources['model_registry'].describe()} in {trained:.1f}s")
        with sagemaker_endpoints(program, resources["model_registry"], day, home / "endpoints"):
            preflight(resources, [program], settings)
            echo("preflight: every adapter is ready")
            setup_s = time.perf_counter() - started
            times.reset()  # from here on: the day itself
            day_started = time.perf_counter()
            report = run_day(defs, program, day, inst, echo=echo, on_step=lambda name: setattr(times, "step", name))
            if report.success:
                times.step = "events"
                _relay_events(defs, inst, report, resources, echo)
            times.step = None
            day_s = time.perf_counter() - day_started
            funnel = funnel_counts(program, report) if report.success else {}
        return DemoResult(report, funnel, times.summary(), times.step_summary(), round(setup_s, 2), round(day_s, 2))


def _relay_events(defs, inst, report, resources, echo) -> None:
    """What the five-minute relay schedule would do after the day: the outbox to EventBridge."""
    from music_feedback import runner
    started = time.perf_counter()
    waiting = len(resources["feedback_store"].unpublished_events(100_000))
    result = runner.execute(defs.resolve_job_def("feedback_events_relay"), None, inst, {})
    left = len(resources["feedback_store"].unpublished_events(100_000))
    report.steps["events"] = round(time.perf_counter() - started, 2)
    if not result.success:
        report.success, report.failure = False, f"events: {result.error}"
    report.lines.append(f"events: {waiting - left:,} of {waiting:,} published to "
                        f"{resources['event_publisher'].describe()}")
