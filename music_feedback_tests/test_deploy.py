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

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
PG_ENV = {"DAGSTER_PG_HOST": "db.internal", "DAGSTER_PG_PORT": "5432", "DAGSTER_PG_USER": "dagster",
          "DAGSTER_PG_PASSWORD": "from-secrets-manager", "DAGSTER_PG_DB": "dagster", "DAGSTER_ECS_CLUSTER": "mf",
          "MUSIC_FEEDBACK_S3_BUCKET": "b", "AWS_REGION": "eu-west-1"}


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
    assert {p.stem for p in (DEPLOY / "iam").glob("*.json")} == {
        "warehouse-redshift", "io-manager-and-lake-s3", "lake-glue", "scorer-sagemaker", "dynamodb-tables",
        "email-ses", "events-eventbridge", "metrics-cloudwatch", "run-launcher-ecs"}


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
