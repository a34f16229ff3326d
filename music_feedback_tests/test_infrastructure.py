"""deploy/infrastructure/template.json as a platform engineer applies it: it lints clean, each role holds
exactly its deploy/iam/ documents, the image is pinned by digest, and the tasks carry what
deploy/dagster.yaml reads."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from music_feedback.aws import stack_roles
from music_feedback.aws.infrastructure import template

pytestmark = pytest.mark.unit

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
TEMPLATE = DEPLOY / "infrastructure" / "template.json"

# cfn-lint rule id -> why the template keeps what it reports. Anything else fails the test.
ALLOWED_WARNINGS: dict[str, str] = {}

# The reviewed copy of which component holds which deploy/iam/ documents (the generator's is
# music_feedback/aws/stack_roles.py ROLE_DOCUMENTS): a change to either alone fails.
EXPECTED_ROLES = {
    "WebserverRole": {"run-launcher-ecs", "compute-logs-s3"},
    "DaemonRole": {"run-launcher-ecs"},
    "CodeServerRole": {"warehouse-redshift", "dynamodb-tables", "alerts-sns"},
    "ServiceRole": {"dynamodb-tables", "link-keys-secretsmanager"},
    "RunRole": {"warehouse-redshift", "io-manager-and-lake-s3", "compute-logs-s3", "lake-glue", "scorer-sagemaker",
                "model-deployer-sagemaker", "dynamodb-tables", "email-ses", "link-keys-secretsmanager",
                "events-eventbridge", "metrics-cloudwatch", "alerts-sns"},
    "RedshiftUnloadRole": {"redshift-unload-role"},
}
# Roles no adapter's code runs under, whose policies the template owns.
TEMPLATE_OWNED_ROLES = {"ExecutionRole": "ECS: pull the image, write the logs, inject the secrets",
                        "ModelRole": "SageMaker: read the model data, pull the model image"}


@pytest.fixture(scope="module")
def committed() -> dict:
    return json.loads(TEMPLATE.read_text())


def of_type(t: dict, type_: str) -> dict:
    return {k: v for k, v in t["Resources"].items() if v["Type"] == type_}


def test_cfn_lint_reports_nothing_unlisted():
    from cfnlint.api import ManualArgs, lint_file
    problems = lint_file(TEMPLATE, config=ManualArgs(regions=["us-east-1", "eu-west-1"],
                                                     include_checks=["I"]))
    unlisted = [p for p in problems if p.rule.id not in ALLOWED_WARNINGS or p.rule.id.startswith("E")]
    assert not unlisted, "\n".join(str(p) for p in unlisted)


def _as_written(value):
    """The template's policy back in deploy/iam/'s own words (placeholders, arn:aws:)."""
    inverse = {v: k for k, v in stack_roles.PLACEHOLDERS.items()}
    if isinstance(value, dict) and set(value) == {"Fn::Sub"}:
        s = value["Fn::Sub"].replace("arn:${AWS::Partition}:", "arn:aws:", 1)
        return re.sub(r"\$\{([^}]+)\}", lambda m: "${" + inverse[m.group(1)] + "}", s)
    if isinstance(value, dict):
        return {k: _as_written(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_written(v) for v in value]
    return value


def test_each_role_attaches_exactly_its_deploy_iam_documents(committed):
    roles = of_type(committed, "AWS::IAM::Role")
    assert set(roles) == set(EXPECTED_ROLES) | set(TEMPLATE_OWNED_ROLES)
    for logical, docs in EXPECTED_ROLES.items():
        props = roles[logical]["Properties"]
        assert "ManagedPolicyArns" not in props, logical
        attached = {p["PolicyName"]: p["PolicyDocument"] for p in props["Policies"]}
        assert set(attached) == docs, logical
        for doc in docs:
            on_disk = json.loads((DEPLOY / "iam" / f"{doc}.json").read_text())
            assert _as_written(attached[doc]) == on_disk, (
                f"{logical}'s {doc} differs from deploy/iam/{doc}.json: "
                "music-feedback aws template > deploy/infrastructure/template.json")
    # Every document is deployed somewhere.
    assert set().union(*EXPECTED_ROLES.values()) == {p.stem for p in (DEPLOY / "iam").glob("*.json")}
    # The names deploy/iam/ lets the daemon (run-launcher-ecs) and the runs (model-deployer-sagemaker) pass.
    assert roles["ModelRole"]["Properties"]["RoleName"] == "music-feedback-model"
    assert roles["RunRole"]["Properties"]["RoleName"] == "music-feedback-run"
    assert roles["ExecutionRole"]["Properties"]["RoleName"] == "music-feedback-execution"


def test_a_changed_policy_document_changes_the_template(tmp_path, monkeypatch, committed):
    shutil.copytree(DEPLOY / "iam", tmp_path / "iam")
    doc = tmp_path / "iam" / "events-eventbridge.json"
    policy = json.loads(doc.read_text())
    policy["Statement"][0]["Action"].append("events:ListRules")
    doc.write_text(json.dumps(policy))
    monkeypatch.setattr(stack_roles, "IAM_DIR", tmp_path / "iam")
    assert template() != committed


def test_an_unknown_placeholder_is_named(tmp_path, monkeypatch):
    shutil.copytree(DEPLOY / "iam", tmp_path / "iam")
    doc = tmp_path / "iam" / "events-eventbridge.json"
    doc.write_text(doc.read_text().replace("${EventBus}", "${NoSuchThing}"))
    monkeypatch.setattr(stack_roles, "IAM_DIR", tmp_path / "iam")
    with pytest.raises(ValueError, match="NoSuchThing"):
        template()


@pytest.mark.parametrize("image,ok", [
    ("123456789012.dkr.ecr.eu-west-1.amazonaws.com/music-feedback@sha256:" + "a" * 64, True),
    ("123456789012.dkr.ecr.eu-west-1.amazonaws.com/music-feedback:latest", False),
    ("music-feedback:1.0@sha256:" + "a" * 63, False),
])
def test_the_images_are_pinned_by_digest(committed, image, ok):
    for param in ("ImageUri", "ModelImageUri"):
        assert bool(re.fullmatch(committed["Parameters"][param]["AllowedPattern"], image)) is ok


def test_the_template_holds_the_platform(committed):
    r, p = committed["Resources"], committed["Parameters"]
    assert p["VpcId"]["Type"] == "AWS::EC2::VPC::Id"
    assert p["PrivateSubnetIds"]["Type"] == "List<AWS::EC2::Subnet::Id>"
    assert p["TaskSecurityGroupIds"]["Type"] == "List<AWS::EC2::SecurityGroup::Id>"
    assert len(of_type(committed, "AWS::ECS::Cluster")) == 1
    services = {v["Properties"]["ServiceName"] for v in of_type(committed, "AWS::ECS::Service").values()}
    assert services == {"music-feedback-webserver", "music-feedback-daemon", "music-feedback-code-server",
                        "music-feedback-service"}
    code = r["CodeServerTaskDefinition"]["Properties"]["ContainerDefinitions"][0]
    assert code["PortMappings"][0]["ContainerPort"] == 4000
    assert r["CodeServerService"]["Properties"]["ServiceRegistries"]
    listener = r["HttpsListener"]["Properties"]
    assert listener["Protocol"] == "HTTPS"
    assert listener["Certificates"] == [{"CertificateArn": {"Ref": "CertificateArn"}}]
    tg = r["ServiceTargetGroup"]["Properties"]
    assert (tg["Port"], tg["HealthCheckPath"]) == (8080, "/healthz")
    service = r["ServiceTaskDefinition"]["Properties"]["ContainerDefinitions"][0]
    assert service["Command"][:2] == ["music-feedback", "serve"] and "8080" in service["Command"]
    db = r["Database"]["Properties"]
    assert db["Engine"] == "postgres" and db["StorageEncrypted"] is True and db["PubliclyAccessible"] is False
    assert "resolve:secretsmanager:${DatabaseSecret}" in db["MasterUserPassword"]["Fn::Sub"]
    assert "GenerateSecretString" in r["DatabaseSecret"]["Properties"]
    names = {v["Properties"]["Name"] for v in of_type(committed, "AWS::SecretsManager::Secret").values()}
    assert {"music-feedback/link-keys", "music-feedback/api-keys", "music-feedback/redshift"} <= names
    assert r["SesEventDestination"]["Properties"]["EventDestination"]["MatchingEventTypes"]
    playlists = r["PlaylistsTable"]["Properties"]
    assert playlists["BillingMode"] == "PAY_PER_REQUEST"
    assert playlists["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"},
                                      {"AttributeName": "sk", "KeyType": "RANGE"}]
    assert r["FeedbackTable"]["Properties"]["TimeToLiveSpecification"] == {"AttributeName": "ttl", "Enabled": True}
    endpoints = {v["Properties"]["EndpointName"]["Ref"]
                 for v in of_type(committed, "AWS::SageMaker::Endpoint").values()}
    assert endpoints == {"AffinityEndpointName", "PropensityEndpointName"}
    groups = {v["Properties"]["LogGroupName"] for v in of_type(committed, "AWS::Logs::LogGroup").values()}
    assert groups == {f"/music-feedback/{c}" for c in ("webserver", "daemon", "code-server", "service", "run")}
    # Each task runs under a role of its own.
    for td in of_type(committed, "AWS::ECS::TaskDefinition").values():
        assert td["Properties"]["TaskRoleArn"]["Fn::GetAtt"][0] in EXPECTED_ROLES


def _env_names(node) -> set[str]:
    if isinstance(node, dict):
        own = {node["env"]} if set(node) == {"env"} else set()
        return own.union(*(_env_names(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_env_names(v) for v in node)) if node else set()
    return set()


@pytest.mark.parametrize("task", ["WebserverTaskDefinition", "DaemonTaskDefinition"])
def test_the_webserver_and_daemon_have_what_the_instance_reads(committed, task):
    instance = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    copied = instance["run_launcher"]["config"].get("env_vars", [])
    needed = _env_names(instance) | {v.split("=")[0] for v in copied}
    container = committed["Resources"][task]["Properties"]["ContainerDefinitions"][0]
    given = {e["Name"] for e in container["Environment"]} | {s["Name"] for s in container["Secrets"]}
    assert needed <= given, sorted(needed - given)
    assert {"DAGSTER_HOME", "MUSIC_FEEDBACK_CODE_HOST"} <= given


def test_the_image_holds_the_instance_where_the_tasks_look():
    from music_feedback.aws.stack_platform import DAGSTER_HOME
    assert f"deploy/dagster.yaml {DAGSTER_HOME}/dagster.yaml" in (DEPLOY / "Dockerfile").read_text()
