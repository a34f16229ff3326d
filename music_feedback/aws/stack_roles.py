"""The template's IAM roles: one per component, each attaching exactly the deploy/iam/ documents its
component's code calls (inlined at generation, their `${...}` placeholders turned into the stack's own
parameters and resources, their partition
`${AWS::Partition}`), so the deployed roles cannot drift from the audited documents.

Two roles are the template's own, since no adapter's code runs under them: the ECS execution role (pull
the image, write the logs, hand the secrets to the containers) and the SageMaker model role (read the
model data, pull the model image, write the endpoint's logs)."""
from __future__ import annotations

import json
import re
from pathlib import Path

IAM_DIR = Path(__file__).resolve().parents[2] / "deploy" / "iam"

# Role logical id -> (role name, the component, its deploy/iam/ documents). The run role and the execution
# role carry the names deploy/iam/run-launcher-ecs.json lets the launcher pass (iam:PassRole).
ROLE_DOCUMENTS: dict[str, tuple[str, str, str, list[str]]] = {
    # Terminating a run from the UI stops its ECS task; the UI shows the step logs from S3.
    "WebserverRole": ("music-feedback-webserver", "ecs-tasks", "the Dagster webserver",
                      ["run-launcher-ecs", "compute-logs-s3"]),
    # Registers each run's task definition, launches and watches it, reads a failed start's log.
    "DaemonRole": ("music-feedback-daemon", "ecs-tasks", "the Dagster daemon", ["run-launcher-ecs"]),
    # Sensors evaluate here: the holdout-lift sensor reads the warehouse, the feedback-volume sensor the
    # feedback table, the run-failure sensor publishes the alert. Definitions load without reading data.
    "CodeServerRole": ("music-feedback-code-server", "ecs-tasks", "the code location's gRPC server",
                       ["warehouse-redshift", "dynamodb-tables", "alerts-sns"]),
    # The HTTP service reads candidates and playlists, writes answers, ledger moves and outbox events,
    # and verifies the links with the keys it reads from Secrets Manager.
    "ServiceRole": ("music-feedback-service", "ecs-tasks", "the HTTP feedback service",
                    ["dynamodb-tables", "link-keys-secretsmanager"]),
    # A run materializes the assets and writes its step logs: every adapter but the launcher. The alerts'
    # document too: `music-feedback aws check` runs as a task under this role and checks the alert topic.
    "RunRole": ("music-feedback-run", "ecs-tasks", "each run's ECS task",
                ["warehouse-redshift", "io-manager-and-lake-s3", "compute-logs-s3", "lake-glue",
                 "scorer-sagemaker", "model-deployer-sagemaker", "dynamodb-tables", "email-ses",
                 "link-keys-secretsmanager", "events-eventbridge", "metrics-cloudwatch", "alerts-sns"]),
    # Redshift assumes it to write UNLOAD output (MUSIC_FEEDBACK_REDSHIFT_UNLOAD_IAM_ROLE); associate it with
    # the cluster (aws redshift modify-cluster-iam-roles).
    "RedshiftUnloadRole": ("music-feedback-redshift-unload", "redshift", "Redshift's UNLOAD to the bucket",
                           ["redshift-unload-role"]),
}

# deploy/iam/ placeholder -> what it is in this stack (a pseudo parameter, a parameter or a resource).
PLACEHOLDERS = {
    "Region": "AWS::Region", "AccountId": "AWS::AccountId", "BucketName": "BucketName",
    "CandidatesTable": "CandidatesTableName", "ScoreCacheTable": "ScoreCacheTableName",
    "FeedbackTable": "FeedbackTableName", "PlaylistsTable": "PlaylistsTableName",
    "GlueDatabase": "GlueDatabaseName", "EventBus": "EventBusName",
    "ConfigurationSet": "SesConfigurationSetName", "SenderDomain": "SenderDomain",
    "EcsCluster": "Cluster", "RunLogGroup": "RunLogs", "AlertsTopic": "AlertsTopic.TopicName",
    "ClusterId": "RedshiftClusterId", "RedshiftUser": "RedshiftUser",
    "RedshiftDatabase": "RedshiftDatabase",
}


def load_document(name: str) -> dict:
    path = IAM_DIR / f"{name}.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: the template is generated from a checkout of the "
                                "repository (deploy/iam/ beside the package)")
    return json.loads(path.read_text())


def _sub(value, doc: str):
    if isinstance(value, dict):
        return {k: _sub(v, doc) for k, v in value.items()}
    if isinstance(value, list):
        return [_sub(v, doc) for v in value]
    if not isinstance(value, str) or ("${" not in value and not value.startswith("arn:aws:")):
        return value
    unknown = set(re.findall(r"\$\{([^}]+)\}", value)) - PLACEHOLDERS.keys()
    if unknown:
        raise ValueError(f"deploy/iam/{doc}.json: placeholder(s) {sorted(unknown)} have no value in the "
                         "template: add them to PLACEHOLDERS in music_feedback/aws/stack_roles.py")
    value = re.sub(r"\$\{([^}]+)\}", lambda m: "${" + PLACEHOLDERS[m.group(1)] + "}", value)
    return {"Fn::Sub": re.sub(r"^arn:aws:", "arn:${AWS::Partition}:", value)}


def rendered(name: str) -> dict:
    """The deploy/iam/ document as the template inlines it."""
    return _sub(load_document(name), name)


def _trust(service: str) -> dict:
    return {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}]}


def _ecs_trust() -> dict:
    trust = _trust("ecs-tasks.amazonaws.com")
    # Only tasks of this account assume it (the confused-deputy guard).
    trust["Statement"][0]["Condition"] = {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    return trust


def component_roles() -> dict:
    return {logical: {"Type": "AWS::IAM::Role", "Properties": {
        "RoleName": name, "Description": f"music_feedback: {component} (policies: deploy/iam/)",
        "AssumeRolePolicyDocument": (_ecs_trust() if service == "ecs-tasks"
                                     else _trust(f"{service}.amazonaws.com")),
        "Policies": [{"PolicyName": doc, "PolicyDocument": rendered(doc)} for doc in docs]}}
        for logical, (name, service, component, docs) in ROLE_DOCUMENTS.items()}


def execution_role(secrets: list[str]) -> dict:
    return {"Type": "AWS::IAM::Role", "Properties": {
        "RoleName": "music-feedback-execution",
        "Description": "music_feedback: ECS pulls the image, writes the logs and injects the secrets",
        "AssumeRolePolicyDocument": _ecs_trust(),
        "ManagedPolicyArns": [{"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/service-role/"
                                          "AmazonECSTaskExecutionRolePolicy"}],
        "Policies": [{"PolicyName": "read-the-task-secrets", "PolicyDocument": {
            "Version": "2012-10-17", "Statement": [{
                "Sid": "InjectTheSecrets", "Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"],
                "Resource": [{"Ref": s} for s in secrets]}]}}]}}


def model_role() -> dict:
    return {"Type": "AWS::IAM::Role", "Properties": {
        "RoleName": "music-feedback-model",
        "Description": "music_feedback: the SageMaker endpoints read the model data and pull the model image",
        "AssumeRolePolicyDocument": _trust("sagemaker.amazonaws.com"),
        "Policies": [{"PolicyName": "serve-the-models", "PolicyDocument": {"Version": "2012-10-17", "Statement": [
            {"Sid": "ReadTheModelData", "Effect": "Allow", "Action": ["s3:GetObject"],
             "Resource": [{"Fn::Sub": "arn:${AWS::Partition}:s3:::${BucketName}/model-registry/*"}]},
            {"Sid": "PullTheModelImage", "Effect": "Allow",
             "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
             "Resource": [{"Fn::Sub": "arn:${AWS::Partition}:ecr:${AWS::Region}:${AWS::AccountId}:"
                                      "repository/music-feedback*"}]},
            {"Sid": "AuthenticateToTheRegistry", "Effect": "Allow", "Action": ["ecr:GetAuthorizationToken"],
             "Resource": ["*"]},
            {"Sid": "WriteTheEndpointLogs", "Effect": "Allow",
             "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
             "Resource": [{"Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:"
                                      "log-group:/aws/sagemaker/Endpoints/*"}]},
            {"Sid": "PutTheEndpointMetrics", "Effect": "Allow", "Action": ["cloudwatch:PutMetricData"],
             "Resource": ["*"], "Condition": {"StringEquals": {"cloudwatch:namespace": "/aws/sagemaker/Endpoints"}}},
        ]}}]}}
