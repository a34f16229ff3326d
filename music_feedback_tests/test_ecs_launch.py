"""A run launches on ECS as deploy/ configures it: the code server started by the image's own command reports
the image, and the instance's run launcher (deploy/dagster.yaml's block, verbatim) registers the run's task
definition and runs it on moto's ECS server, from a daemon task whose metadata endpoint this test serves.
The IAM policy of the launcher (deploy/iam/run-launcher-ecs.json) allows exactly what it did."""
from __future__ import annotations

import fnmatch
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import pytest
import yaml

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
REGION, ACCOUNT, CLUSTER = "us-east-1", "123456789012", "music-feedback"
IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/music-feedback:test-build"
RUN_ROLE = f"arn:aws:iam::{ACCOUNT}:role/music-feedback-run"
EXECUTION_ROLE = f"arn:aws:iam::{ACCOUNT}:role/music-feedback-execution"
SECRET = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:music-feedback/"
RUN_LOG_GROUP = "/ecs/music-feedback-run"
JOB, PARTITION = "music_feedback_daily_batch", "2026-03-14"
# What the deployment gives the daemon's container (docs/aws.md, "Runs on ECS").
DAEMON_ENV = {
    "DAGSTER_PG_HOST": "db.internal", "DAGSTER_PG_PORT": "5432", "DAGSTER_PG_USER": "dagster", "DAGSTER_PG_DB": "dagster",
    "DAGSTER_ECS_CLUSTER": CLUSTER, "AWS_REGION": REGION, "MUSIC_FEEDBACK_S3_BUCKET": "music-feedback-data",
    "MUSIC_FEEDBACK_REDSHIFT_HOST": "warehouse.internal", "MUSIC_FEEDBACK_REDSHIFT_USER": "music_feedback",
    "MUSIC_FEEDBACK_PUBLIC_URL": "https://feedback.example.com", "MUSIC_FEEDBACK_REDSHIFT_PORT": "5439",
    "MUSIC_FEEDBACK_REDSHIFT_DATABASE": "dev", "MUSIC_FEEDBACK_GLUE_DATABASE": "music_feedback",
    "MUSIC_FEEDBACK_DYNAMODB_TABLE": "music-feedback-candidates", "MUSIC_FEEDBACK_SCORE_CACHE_TABLE": "music-feedback-score-cache",
    "MUSIC_FEEDBACK_FEEDBACK_TABLE": "music-feedback-feedback", "MUSIC_FEEDBACK_PLAYLISTS_TABLE": "music-feedback-playlists",
    "MUSIC_FEEDBACK_EVENT_BUS": "music-feedback", "MUSIC_FEEDBACK_SES_CONFIGURATION_SET": "music-feedback",
    "MUSIC_FEEDBACK_SES_EVENTS_QUEUE": "music-feedback-ses-events", "MUSIC_FEEDBACK_LINK_KEYS_SECRET": "music-feedback/link-keys",
    "MUSIC_FEEDBACK_SAGEMAKER_IMAGE": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/music-feedback-model:test-build",
    "MUSIC_FEEDBACK_SAGEMAKER_INSTANCE_TYPE": "ml.m5.large",
    "MUSIC_FEEDBACK_SAGEMAKER_ROLE_ARN": f"arn:aws:iam::{ACCOUNT}:role/music-feedback-model",
    "MUSIC_FEEDBACK_RUN_ROLE_ARN": RUN_ROLE, "MUSIC_FEEDBACK_EXECUTION_ROLE_ARN": EXECUTION_ROLE,
    "MUSIC_FEEDBACK_RUN_LOG_GROUP": RUN_LOG_GROUP,
    "DAGSTER_PG_PASSWORD_SECRET_ARN": SECRET + "pg", "MUSIC_FEEDBACK_REDSHIFT_PASSWORD_SECRET_ARN": SECRET + "redshift",
    "MUSIC_FEEDBACK_LINK_KEYS_SECRET_ARN": SECRET + "link-keys",
}


def dockerfile_cmd() -> list[str]:
    return json.loads(re.search(r"^CMD (.*)$", (DEPLOY / "Dockerfile").read_text(), re.M).group(1))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def policy_resources(sid: str) -> list[str]:
    """The resources of one statement of the launcher's policy, with the deployment's values put in."""
    values = {"Region": REGION, "AccountId": ACCOUNT, "EcsCluster": CLUSTER, "RunLogGroup": RUN_LOG_GROUP}
    policy = json.loads((DEPLOY / "iam" / "run-launcher-ecs.json").read_text())
    [st] = [s for s in policy["Statement"] if s["Sid"] == sid]
    sub = lambda text: re.sub(r"\$\{(\w+)\}", lambda m: values[m.group(1)], text)  # noqa: E731
    return [sub(r) for r in st["Resource"]], json.loads(sub(json.dumps(st.get("Condition", {}))))


def allowed(resource: str, patterns: list[str]) -> bool:
    """IAM's matching of a resource ARN: '*' any run of characters, '?' one; case-sensitive."""
    return any(fnmatch.fnmatchcase(resource, p) for p in patterns)


# --- the image's command -------------------------------------------------------------------------------------


@pytest.mark.unit
def test_the_base_image_is_pinned_by_digest():
    [line] = [ln for ln in (DEPLOY / "Dockerfile").read_text().splitlines() if ln.startswith("FROM ")]
    assert re.fullmatch(r"FROM python:3\.11-slim@sha256:[0-9a-f]{64}", line), line


@pytest.mark.unit
def test_the_code_server_refuses_to_start_without_its_image():
    cmd = dockerfile_cmd()
    wrapper, server = cmd[:4], cmd[4:]
    assert server[:3] == ["dagster", "code-server", "start"]
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_CURRENT_IMAGE"}
    refused = subprocess.run([*wrapper, "echo", "started"], env=env, capture_output=True, text=True)
    assert refused.returncode == 64 and "DAGSTER_CURRENT_IMAGE" in refused.stderr
    started = subprocess.run([*wrapper, "echo", "started"], env={**env, "DAGSTER_CURRENT_IMAGE": IMAGE},
                             capture_output=True, text=True)
    assert (started.returncode, started.stdout) == (0, "started\n")


# --- the servers -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def code_server(tmp_path_factory):
    """The code location's gRPC server, started by the Dockerfile's own command on a free loopback port, with
    DAGSTER_CURRENT_IMAGE set as the code server's task definition sets it."""
    from dagster._grpc.client import DagsterGrpcClient
    port = free_port()
    cmd = ["127.0.0.1" if a == "0.0.0.0" else str(port) if a == "4000" else a for a in dockerfile_cmd()]
    home = tmp_path_factory.mktemp("code-server")
    env = {**os.environ, "DAGSTER_CURRENT_IMAGE": IMAGE, "MUSIC_FEEDBACK_HOME": str(home),
           "DAGSTER_HOME": str(home), "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MUSIC_FEEDBACK_ENV", None)
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    client = DagsterGrpcClient(port=port, host="127.0.0.1")
    deadline = time.monotonic() + 180
    try:
        while True:
            try:
                client.ping("")
                break
            except Exception:
                if proc.poll() is not None:
                    pytest.fail(f"the code server exited {proc.returncode}: {proc.stderr.read()[-3000:]}")
                if time.monotonic() > deadline:
                    pytest.fail("the code server did not answer within 180 s")
                time.sleep(0.5)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Metadata(BaseHTTPRequestHandler):
    """ECS's task metadata endpoint v4 for the daemon's container: / is the container, /task the task."""
    container: dict = {}
    task: dict = {}

    def do_GET(self):  # noqa: N802
        body = json.dumps(self.task if self.path.rstrip("/").endswith("/task") else self.container).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def moto_needs_container_memory(params, **kwargs):
    """moto's RunTask adds up the containers' own memory (ECS on Fargate needs only the task's, which is what the
    launcher registers): give a container that has none its task's memory, in the request moto receives."""
    for container in params.get("containerDefinitions", []):
        if "memory" not in container and "memoryReservation" not in container:
            container["memoryReservation"] = int(params["memory"])


@pytest.fixture
def daemon_task(moto_url, monkeypatch):
    """The launching process as the deployment has it: a Fargate task of the daemon's task definition in the
    cluster's private subnet, its metadata endpoint served on loopback, its environment set."""
    for k, v in {**DAEMON_ENV, "AWS_ENDPOINT_URL": moto_url, "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(k, v)
    boto3.setup_default_session()  # the launcher's clients come from it
    boto3.DEFAULT_SESSION.events.register("provide-client-params.ecs.RegisterTaskDefinition",
                                          moto_needs_container_memory)
    ec2 = boto3.client("ec2", region_name=REGION)
    ecs = boto3.client("ecs", region_name=REGION)
    # New accounts get the long ARN format (task/<cluster>/<id>), which the policy's task resources name.
    ecs.put_account_setting(name="taskLongArnFormat", value="enabled")
    vpc = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})  # as the deployment's VPC has
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.42.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName=f"music-feedback-tasks-{vpc}", Description="runs", VpcId=vpc)["GroupId"]
    cluster = ecs.create_cluster(clusterName=CLUSTER)["cluster"]["clusterArn"]
    # The code server's own service: its family is not one the launcher may run.
    ecs.register_task_definition(
        family="music-feedback-code", networkMode="awsvpc", requiresCompatibilities=["FARGATE"], cpu="1024",
        memory="2048", taskRoleArn=f"arn:aws:iam::{ACCOUNT}:role/music-feedback-code", executionRoleArn=EXECUTION_ROLE,
        containerDefinitions=[{"name": "music-feedback", "image": IMAGE, "portMappings": [{"containerPort": 4000}],
                               "environment": [{"name": "DAGSTER_CURRENT_IMAGE", "value": IMAGE}]}])
    daemon = ecs.register_task_definition(
        family="music-feedback-daemon", networkMode="awsvpc", requiresCompatibilities=["FARGATE"], cpu="512",
        memory="1024", taskRoleArn=f"arn:aws:iam::{ACCOUNT}:role/music-feedback-daemon",
        executionRoleArn=EXECUTION_ROLE,
        containerDefinitions=[{"name": "dagster-daemon", "image": IMAGE, "command": ["dagster-daemon", "run"],
                               "environment": [{"name": k, "value": v} for k, v in DAEMON_ENV.items()]}],
    )["taskDefinition"]["taskDefinitionArn"]
    task = ecs.run_task(cluster=CLUSTER, taskDefinition=daemon, launchType="FARGATE", networkConfiguration={
        "awsvpcConfiguration": {"subnets": [subnet], "securityGroups": [group], "assignPublicIp": "DISABLED"}})["tasks"][0]

    Metadata.container = {"Name": "dagster-daemon", "Image": IMAGE, "DockerName": "ecs-dagster-daemon"}
    Metadata.task = {"Cluster": cluster, "TaskARN": task["taskArn"], "Family": "music-feedback-daemon"}
    server = ThreadingHTTPServer(("127.0.0.1", 0), Metadata)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("ECS_CONTAINER_METADATA_URI_V4", f"http://127.0.0.1:{server.server_address[1]}/v4/daemon")
    try:
        yield {"ecs": ecs, "cluster": cluster, "subnet": subnet, "group": group, "task": task}
    finally:
        server.shutdown()
        server.server_close()
        for t in ecs.list_tasks(cluster=CLUSTER)["taskArns"]:
            ecs.stop_task(cluster=CLUSTER, task=t)
        boto3.DEFAULT_SESSION = None


@pytest.fixture
def launched(daemon_task, code_server, tmp_path):
    """The daily job's run for one partition, created as the UI and the schedules do and launched as the daemon does, by an instance whose
    run launcher is deploy/dagster.yaml's (storage: SQLite in a temporary folder instead of PostgreSQL)."""
    from dagster import DagsterInstance
    from dagster._cli.job import _create_run
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import GrpcServerTarget

    deployed = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump({
        "telemetry": {"enabled": False},
        "storage": {"sqlite": {"base_dir": str(tmp_path / "storage")}},
        "run_launcher": deployed["run_launcher"]}))
    with DagsterInstance.from_config(str(tmp_path)) as instance, WorkspaceProcessContext(
            instance, GrpcServerTarget(host="127.0.0.1", port=code_server, socket=None,
                                       location_name="music_feedback")) as process_context:
        workspace = process_context.create_request_context()
        location = workspace.get_code_location("music_feedback")
        [repo] = location.get_repositories().values()
        job = repo.get_full_job(JOB)
        run = _create_run(instance=instance, code_location=location, remote_repo=repo, remote_job=job,
                          run_config={}, tags={"dagster/partition": PARTITION}, op_selection=None, run_id=None)
        instance.launch_run(run.run_id, workspace)  # what the daemon does with a dequeued run
        run = instance.get_run_by_id(run.run_id)
        if "ecs/task_arn" not in run.tags:
            events = [e.user_message + (e.dagster_event.event_specific_data.error.to_string()
                                        if getattr(e.dagster_event.event_specific_data, "error", None) else "")
                      for e in instance.all_logs(run.run_id) if e.dagster_event and e.dagster_event.is_run_failure
                      or e.dagster_event and e.dagster_event.event_type_value == "ENGINE_EVENT"]
            pytest.fail(f"the run did not launch ({run.status}): " + "\n".join(events))
        yield instance, run, daemon_task


# --- the launch --------------------------------------------------------------------------------------------


def test_a_daily_run_launches_as_its_own_task(launched):
    from dagster._grpc.types import ExecuteRunArgs
    from dagster._serdes import deserialize_value
    from dagster_aws.ecs.utils import get_task_definition_family

    instance, run, daemon = launched
    ecs = daemon["ecs"]
    assert run.tags["ecs/cluster"] == daemon["cluster"]
    [task] = ecs.describe_tasks(cluster=CLUSTER, tasks=[run.tags["ecs/task_arn"]], include=["TAGS"])["tasks"]
    definition = ecs.describe_task_definition(taskDefinition=task["taskDefinitionArn"])["taskDefinition"]

    # The family: the launcher's, for this job of this location; RunTask is allowed on it, not on the others.
    family = get_task_definition_family("music-feedback", run.remote_job_origin)
    assert definition["family"] == family and family.startswith("music-feedback_")
    run_task, condition = policy_resources("LaunchRunTasks")
    assert allowed(f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/{family}", run_task)
    assert allowed(definition["taskDefinitionArn"], run_task)
    assert not allowed(f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/music-feedback-code:1", run_task)
    assert not allowed(f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/music-feedback-daemon:1", run_task)
    assert condition["ArnEquals"]["ecs:cluster"] == task["clusterArn"]

    # The image the code server reported, the run's role and the execution role, not the daemon's.
    [container] = definition["containerDefinitions"]
    assert (container["name"], container["image"]) == ("music-feedback", IMAGE)
    assert (definition["taskRoleArn"], definition["executionRoleArn"]) == (RUN_ROLE, EXECUTION_ROLE)
    assert definition["requiresCompatibilities"] == ["FARGATE"] and definition["networkMode"] == "awsvpc"
    assert (definition["cpu"], definition["memory"]) == ("2048", "8192")
    assert container["logConfiguration"]["options"]["awslogs-group"] == RUN_LOG_GROUP
    env = {e["name"]: e["value"] for e in container["environment"]}
    assert env["DAGSTER_PG_HOST"] == "db.internal" and env["MUSIC_FEEDBACK_S3_BUCKET"] == "music-feedback-data"
    assert env["DAGSTER_RUN_JOB_NAME"] == JOB
    forwarded = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())["run_launcher"]["config"]["env_vars"]
    assert {k: env[k] for k in forwarded} == {k: DAEMON_ENV[k] for k in forwarded}
    names = [e["name"] for e in container["environment"]]
    assert len(names) == len(set(names)), sorted(n for n in set(names) if names.count(n) > 1)
    assert {s["name"]: s["valueFrom"] for s in container["secrets"]} == {
        "DAGSTER_PG_PASSWORD": SECRET + "pg", "MUSIC_FEEDBACK_REDSHIFT_PASSWORD": SECRET + "redshift",
        "MUSIC_FEEDBACK_LINK_KEYS": SECRET + "link-keys"}
    assert not {s["name"] for s in container["secrets"]} & set(env), "a secret landed in plain environment"

    # The task: in the daemon's cluster and network, Fargate, tagged with its run and partition.
    assert task["launchType"] == "FARGATE"
    [override] = task["overrides"]["containerOverrides"]
    assert override["name"] == "music-feedback"
    tags = {t["key"]: t["value"] for t in task.get("tags", [])}
    assert tags["dagster/run_id"] == run.run_id and tags["dagster/partition"] == PARTITION

    # Its command is dagster's execute_run of exactly this run.
    command = override["command"]
    assert command[:3] == ["dagster", "api", "execute_run"]
    args = deserialize_value(command[3], ExecuteRunArgs)
    assert args.run_id == run.run_id and args.job_origin.job_name == JOB
    assert args.job_origin.repository_origin.container_image == IMAGE
    assert instance.get_run_by_id(run.run_id).tags["dagster/partition"] == PARTITION


def test_the_policy_passes_exactly_the_roles_the_runs_carry(launched):
    _, run, daemon = launched
    ecs = daemon["ecs"]
    [task] = ecs.describe_tasks(cluster=CLUSTER, tasks=[run.tags["ecs/task_arn"]], include=["TAGS"])["tasks"]
    definition = ecs.describe_task_definition(taskDefinition=task["taskDefinitionArn"])["taskDefinition"]
    passed, condition = policy_resources("PassTheRunRoles")
    assert sorted(passed) == sorted({definition["taskRoleArn"], definition["executionRoleArn"]})
    assert condition == {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}
    # The tasks it watches, stops and tags are the cluster's; a failed run's log is the run log group's.
    watched, _ = policy_resources("WatchAndStopRunTasks")
    assert allowed(task["taskArn"], watched), (task["taskArn"], watched)
    logs, _ = policy_resources("ReadAFailedRunsLog")
    options = definition["containerDefinitions"][0]["logConfiguration"]["options"]
    stream = f"{options['awslogs-stream-prefix']}/music-feedback/{task['taskArn'].rsplit('/', 1)[1]}"
    assert allowed(f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{options['awslogs-group']}:log-stream:{stream}", logs)
    # The launcher registered the run's family and no other (the code server's and the daemon's are the
    # deployment's); every revision of it carries only the passed roles.
    families = set(ecs.list_task_definition_families(familyPrefix="music-feedback")["families"])
    assert families == {"music-feedback-code", "music-feedback-daemon", definition["family"]}
    for arn in ecs.list_task_definitions(familyPrefix=definition["family"])["taskDefinitionArns"]:
        revision = ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]
        assert {revision["taskRoleArn"], revision["executionRoleArn"]} <= set(passed)
