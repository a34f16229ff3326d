"""A whole day on the AWS adapter set, against the stand-ins (`make demo-aws` in a test): Redshift is a
PostgreSQL server loaded with the small warehouse, S3, Glue, CloudWatch and EventBridge are moto's
server, DynamoDB is DynamoDB Local, SageMaker is the local front, SES v2 the stand-in. The day's funnel
must equal the embedded run's on the same data."""
from __future__ import annotations

import boto3
import pytest
from dagster import instance_for_test

from music_feedback import runner
from music_feedback_tools.demo_aws import run_demo
from music_feedback.definitions import build_definitions
from music_feedback.programs.loader import load_programs
from music_feedback_tools.simulate.day import funnel_counts, run_day
from music_feedback_tests.conftest import BATCH_DAY

pytestmark = pytest.mark.graph

STEPS = ["batch", "export", "email", "listeners", "playlists", "metrics"]


@pytest.fixture(scope="module")
def embedded(tmp_path_factory, small_warehouse):
    mp = pytest.MonkeyPatch()
    mp.setenv("MUSIC_FEEDBACK_HOME", str(tmp_path_factory.mktemp("embedded-day")))
    mp.setenv("MUSIC_FEEDBACK_WAREHOUSE", str(small_warehouse))
    for var in ("MUSIC_FEEDBACK_ENV", "MUSIC_FEEDBACK_PROGRAM", "MUSIC_FEEDBACK_PROGRAMS_DIR"):
        mp.delenv(var, raising=False)
    program, defs = load_programs()[0], build_definitions()
    with instance_for_test() as instance:
        runner.ensure_models(defs, program, instance, day=BATCH_DAY)
        report = run_day(defs, program, BATCH_DAY, instance)
        assert report.success, report.failure
        yield funnel_counts(program, report)
    mp.undo()


@pytest.fixture(scope="module")
def aws_day(tmp_path_factory, small_warehouse, dynamodb_local_endpoint):
    mp = pytest.MonkeyPatch()
    for var in ("MUSIC_FEEDBACK_PROGRAM", "MUSIC_FEEDBACK_PROGRAMS_DIR", "MUSIC_FEEDBACK_WAREHOUSE"):
        mp.delenv(var, raising=False)
    program = load_programs()[0]
    home = tmp_path_factory.mktemp("aws-day")
    lines = []
    result = run_demo(program, BATCH_DAY, small_warehouse, home / "demo", echo=lines.append)
    yield result, lines, home / "demo"
    mp.undo()


def test_the_aws_day_completes_every_step(aws_day):
    result, lines, _ = aws_day
    assert result.report.success, (result.report.failure, lines[-10:])
    assert list(result.report.steps) == STEPS + ["events"]
    assert any(line.startswith("events: ") and " published to EventBridge bus" in line for line in lines)
    assert "preflight: every adapter is ready" in lines


def test_the_aws_day_gives_the_embedded_funnel(aws_day, embedded):
    result, _, _ = aws_day
    assert result.funnel["stored"] > 0 and result.funnel["email:delivered"] > 0
    assert result.funnel == embedded


def test_every_aws_adapter_was_used(aws_day):
    result, _, _ = aws_day
    used = set(result.adapters)
    assert {"DynamoDB", "S3", "Glue", "SageMaker Runtime", "SESv2", "CloudWatch", "EventBridge"} <= used, used
    assert any(name.startswith("warehouse (Redshift") for name in used), used
