"""The deploy/ folder: the instance configuration loads through Dagster's own schema, every configurable
class in it accepts its config, the IAM policies are well-formed and least-privilege, the template's tables
are the code's tables, and the image installs from the lock file."""
from __future__ import annotations

import importlib
import json
import shutil
from pathlib import Path

import pytest
from dagster._config import process_config
from dagster._core.instance.config import dagster_instance_config

from music_feedback.aws.infrastructure import template

pytestmark = pytest.mark.unit

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
PG_ENV = {"DAGSTER_PG_HOST": "db.internal", "DAGSTER_PG_PORT": "5432", "DAGSTER_PG_USER": "dagster",
          "DAGSTER_PG_PASSWORD": "from-secrets-manager", "DAGSTER_PG_DB": "dagster", "DAGSTER_ECS_CLUSTER": "mf",
          "MUSIC_FEEDBACK_S3_BUCKET": "b", "AWS_REGION": "eu-west-1",
          # the run launcher's (music_feedback_tests/test_ecs_launch.py launches a run with them)
          "MUSIC_FEEDBACK_RUN_ROLE_ARN": "arn:aws:iam::123456789012:role/music-feedback-run",
          "MUSIC_FEEDBACK_EXECUTION_ROLE_ARN": "arn:aws:iam::123456789012:role/music-feedback-execution",
          "MUSIC_FEEDBACK_RUN_LOG_GROUP": "/ecs/music-feedback-run",
          "DAGSTER_PG_PASSWORD_SECRET_ARN": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:music-feedback/pg",
          "MUSIC_FEEDBACK_REDSHIFT_PASSWORD_SECRET_ARN":
              "arn:aws:secretsmanager:eu-west-1:123456789012:secret:music-feedback/redshift",
          "MUSIC_FEEDBACK_LINK_KEYS_SECRET_ARN":
              "arn:aws:secretsmanager:eu-west-1:123456789012:secret:music-feedback/link-keys"}


def test_the_instance_configuration_loads(tmp_path, monkeypatch):
    for k, v in PG_ENV.items():
        monkeypatch.setenv(k, v)
    shutil.copy(DEPLOY / "dagster.yaml", tmp_path / "dagster.yaml")
    config, _ = dagster_instance_config(str(tmp_path))
    assert config["run_launcher"]["class"] == "EcsRunLauncher"
    assert config["storage"]["postgres"]["postgres_db"]["scheme"] == "postgresql+psycopg2"
    assert config["run_coordinator"]["config"]["tag_concurrency_limits"][0]["key"] == "dagster/partition"
    for section in ("run_launcher", "run_coordinator", "compute_logs"):
        cls = getattr(importlib.import_module(config[section]["module"]), config[section]["class"])
        result = process_config(cls.config_type(), config[section]["config"])
        assert result.success, (section, [e.message for e in result.errors])
    from dagster_postgres import DagsterPostgresStorage
    assert process_config(DagsterPostgresStorage.config_type(), config["storage"]["postgres"]).success


def test_a_wrong_key_in_the_launcher_config_is_refused(tmp_path):
    from dagster_aws.ecs import EcsRunLauncher
    assert not process_config(EcsRunLauncher.config_type(), {"no_such_setting": 1}).success


@pytest.mark.parametrize("path", sorted((DEPLOY / "iam").glob("*.json")), ids=lambda p: p.stem)
def test_each_iam_policy_is_least_privilege(path):
    policy = json.loads(path.read_text())
    assert policy["Version"] == "2012-10-17" and policy["Statement"]
    for st in policy["Statement"]:
        assert st["Effect"] == "Allow" and st.get("Sid")
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
        assert all(a != "*" and not a.endswith(":*") for a in actions), (path.name, actions)
        # Only calls that AWS cannot scope to a resource may name "*", and then under a condition.
        if "*" in resources:
            assert st.get("Condition") or set(actions) <= UNSCOPED, (path.name, st["Sid"])


UNSCOPED = {"sts:GetCallerIdentity", "ses:GetAccount", "cloudwatch:PutMetricData", "cloudwatch:ListMetrics",
            "ecs:DescribeTaskDefinition", "ecs:RegisterTaskDefinition", "ecs:ListAccountSettings",
            "secretsmanager:ListSecrets", "ec2:DescribeNetworkInterfaces"}


def test_one_policy_per_adapter():
    """The documents are the ones test_iam_policies maps the code's AWS calls to (its SOURCES)."""
    from music_feedback_tests.test_iam_policies import _policies
    assert {p.stem for p in (DEPLOY / "iam").glob("*.json")} == _policies()


def test_the_template_holds_the_code_tables():
    committed = json.loads((DEPLOY / "infrastructure" / "template.json").read_text())
    assert committed == template(), "regenerate it: music-feedback aws template > deploy/infrastructure/template.json"
    tables = {k: v["Properties"] for k, v in committed["Resources"].items() if v["Type"] == "AWS::DynamoDB::Table"}
    assert [i["IndexName"] for i in tables["FeedbackTable"]["GlobalSecondaryIndexes"]] == [
        "ByListener", "ByProgram", "Outbox"]
    assert tables["CandidatesTable"]["TimeToLiveSpecification"]["AttributeName"] == "ttl"


def test_the_image_installs_from_the_lock_file():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert "COPY constraints.txt" in dockerfile and "-c constraints.txt" in dockerfile
    assert "USER " in dockerfile  # not root
    assert "music_feedback.definitions" in dockerfile


def test_the_template_passes_cfn_lint():
    """CloudFormation's own rules (cfn-lint's copy of its resource specs): a template that lints clean deploys."""
    from cfnlint.api import ManualArgs, lint_file
    problems = lint_file(DEPLOY / "infrastructure" / "template.json", config=ManualArgs(regions=["us-east-1"]))
    assert not problems, "\n".join(str(p) for p in problems)


# IAM prefix -> the botocore service models whose operations its actions name.
SERVICES = {"s3": ["s3"], "glue": ["glue"], "sagemaker": ["sagemaker-runtime", "sagemaker"], "dynamodb": ["dynamodb"],
            "ses": ["sesv2"], "events": ["events"], "cloudwatch": ["cloudwatch"], "ecs": ["ecs"], "ec2": ["ec2"],
            "logs": ["logs"], "secretsmanager": ["secretsmanager"], "iam": ["iam"], "sts": ["sts"],
            "redshift": ["redshift"], "redshift-data": ["redshift-data"], "ecr": ["ecr"], "sns": ["sns"], "sqs": ["sqs"]}
# Permissions that are no API operation of that name (ConditionCheckItem: a check inside TransactWriteItems).
PERMISSION_ONLY = {"s3:ListBucket", "iam:PassRole", "dynamodb:ConditionCheckItem"}


@pytest.mark.parametrize("path", sorted((DEPLOY / "iam").glob("*.json")), ids=lambda p: p.stem)
def test_each_action_is_an_operation_of_its_service(path):
    """A misspelt action is silently ignored by IAM and shows up only as AccessDenied in a run."""
    import botocore.session
    session = botocore.session.get_session()
    for st in json.loads(path.read_text())["Statement"]:
        for action in st["Action"] if isinstance(st["Action"], list) else [st["Action"]]:
            prefix, _, name = action.partition(":")
            assert prefix in SERVICES, f"{path.name}: {action}: add its service to SERVICES"
            ops = {op for svc in SERVICES[prefix] for op in session.get_service_model(svc).operation_names}
            assert action in PERMISSION_ONLY or name in ops, f"{path.name}: {action} is no {prefix} operation"


def test_the_workspace_points_at_the_code_server(monkeypatch):
    import re

    import yaml
    from dagster._core.workspace.config_schema import ensure_workspace_config
    monkeypatch.setenv("MUSIC_FEEDBACK_CODE_HOST", "code.music-feedback.internal")
    path = DEPLOY / "workspace.yaml"
    server = ensure_workspace_config(yaml.safe_load(path.read_text()), str(path))["load_from"][0]["grpc_server"]
    assert (server["host"], server["port"]) == ("code.music-feedback.internal", 4000)
    cmd = re.search(r"^CMD (.*)$", (DEPLOY / "Dockerfile").read_text(), re.M).group(1)
    assert '"-p", "4000"' in cmd and '"-h", "0.0.0.0"' in cmd
