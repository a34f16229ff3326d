"""AWS adapter of the model deployer: a promoted version goes to the SageMaker endpoint its program names.

One deployment is: the version's model data (`model.tar.gz` in the S3 registry) -> CreateModel (the serving
image, the model data URL, the execution role, which SageMaker assumes: iam:PassRole) -> CreateEndpointConfig
(one variant on the configured instances) -> UpdateEndpoint (CreateEndpoint when the endpoint does not exist
yet) -> DescribeEndpoint every `poll_s` until the endpoint is InService on the new configuration, or Failed,
UpdateRollbackFailed, back on another configuration (rolled back), or `timeout_s` passed.

SageMaker updates an endpoint blue/green: until the new fleet is healthy the old one serves, and a failed
update leaves the old one serving. The deployer never raises for a failed deployment: it returns what
failed and what to do, and the retrain keeps the old champion in the registry, so the batch goes on
scoring with the version the endpoint still serves.
"""
from __future__ import annotations

import os
import re
import time
from typing import Optional

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError
from pydantic import Field, PrivateAttr

from music_feedback.programs.model import ScoringModel
from music_feedback.scoring.deployment.port import DEPLOYED, FAILED, Deployment, ModelDeployer
from music_feedback.scoring.registry.port import ModelRegistry

IMAGE_VAR = "MUSIC_FEEDBACK_SAGEMAKER_IMAGE"
ROLE_VAR = "MUSIC_FEEDBACK_SAGEMAKER_ROLE_ARN"
INSTANCE_TYPE_VAR = "MUSIC_FEEDBACK_SAGEMAKER_INSTANCE_TYPE"
INSTANCE_COUNT_VAR = "MUSIC_FEEDBACK_SAGEMAKER_INSTANCE_COUNT"
TIMEOUT_VAR = "MUSIC_FEEDBACK_SAGEMAKER_DEPLOY_TIMEOUT_S"
POLL_VAR = "MUSIC_FEEDBACK_SAGEMAKER_DEPLOY_POLL_S"
VARIANT = "AllTraffic"
BUSY = ("Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting")
FAILED_STATES = ("Failed", "UpdateRollbackFailed", "OutOfService")


def resource_name(endpoint: str, version: str) -> str:
    """The SageMaker model and endpoint configuration of a version: `<endpoint>-<version digest>`
    (names allow [A-Za-z0-9-], 63 characters)."""
    digest = version.rsplit("@", 1)[-1]
    name = re.sub(r"[^A-Za-z0-9-]+", "-", f"{endpoint}-{digest}").strip("-")
    return name[-63:].lstrip("-") if len(name) > 63 else name


class DeploymentFailed(Exception):
    def __init__(self, detail: str, remedy: str):
        super().__init__(detail)
        self.detail, self.remedy = detail, remedy


class SageMakerDeployer(ModelDeployer):
    image_uri: Optional[str] = Field(default=None, description=(
        f'Serving image (deploy/sagemaker/Dockerfile, pushed to ECR) of every model ({IMAGE_VAR}).'))
    execution_role_arn: Optional[str] = Field(default=None, description=(
        f'Role SageMaker assumes to pull the image and read the model data ({ROLE_VAR}); the deployer '
        'needs iam:PassRole on it.'))
    instance_type: str = Field(default="ml.m5.large", description=f'Instance type of each endpoint ({INSTANCE_TYPE_VAR}).')
    instance_count: int = Field(default=1, description=f'Instances of each endpoint ({INSTANCE_COUNT_VAR}).')
    timeout_s: float = Field(default=1800.0, description=(
        f'Longest wait for an endpoint to be InService after a create or update ({TIMEOUT_VAR}).'))
    poll_s: float = Field(default=15.0, description=f'Seconds between DescribeEndpoint calls while waiting ({POLL_VAR}).')
    region_name: str = Field(default="us-east-1", description='SageMaker region (AWS_REGION, else AWS_DEFAULT_REGION).')
    endpoint_url: Optional[str] = Field(default=None, description=(
        "SageMaker API URL; None: boto3's own (AWS_ENDPOINT_URL_SAGEMAKER, else the region's)."))
    _client = PrivateAttr(default=None)

    @classmethod
    def from_env(cls) -> "SageMakerDeployer":
        def get(name):
            return os.environ.get(name, "").strip() or None
        numbers = {field: float(get(var)) for field, var in (("timeout_s", TIMEOUT_VAR), ("poll_s", POLL_VAR))
                   if get(var)}
        if get(INSTANCE_COUNT_VAR):
            numbers["instance_count"] = int(get(INSTANCE_COUNT_VAR))
        return cls(image_uri=get(IMAGE_VAR), execution_role_arn=get(ROLE_VAR),
                   instance_type=get(INSTANCE_TYPE_VAR) or "ml.m5.large",
                   region_name=get("AWS_REGION") or get("AWS_DEFAULT_REGION") or "us-east-1", **numbers)

    def client(self):
        if self._client is None:
            self._client = boto3.client("sagemaker", region_name=self.region_name, endpoint_url=self.endpoint_url,
                                        config=Config(retries={"mode": "standard", "total_max_attempts": 5}))
        return self._client

    def describe(self) -> str:
        return f"SageMaker endpoints ({self.instance_count} x {self.instance_type}, image {self.image_uri or 'unset'})"

    def deploy(self, spec: ScoringModel, version: str, registry: ModelRegistry) -> Deployment:
        started = time.monotonic()
        endpoint = spec.endpoint_name
        name = resource_name(endpoint, version)
        out = Deployment(spec.model_id, version, FAILED, "", endpoint=endpoint,
                         resources={"model": name, "endpoint_config": name})
        try:
            out.action, out.detail = self._deploy(spec, version, registry, endpoint, name, out.resources)
            out.status = DEPLOYED
        except DeploymentFailed as exc:
            out.detail, out.remedy = exc.detail, exc.remedy
        out.seconds = round(time.monotonic() - started, 2)
        return out

    def _deploy(self, spec, version, registry, endpoint, name, made: dict) -> tuple[str, str]:
        missing = [var for var, value in ((IMAGE_VAR, self.image_uri), (ROLE_VAR, self.execution_role_arn))
                   if not value]
        if missing:
            raise DeploymentFailed(f"SageMaker deployment is not configured: {' and '.join(missing)} unset",
                                   f"set {' and '.join(missing)}, then re-run this week's retrain")
        url = registry.artifact_url(spec.model_id, version)
        made["model_data_url"] = url
        if not url.startswith("s3://"):
            raise DeploymentFailed(f"the model data {url} is not in S3 (registry {registry.describe()})",
                                   "use the S3 model registry (MUSIC_FEEDBACK_ENV=aws)")
        sm = self.client()
        before = self._describe(endpoint)
        made["endpoint_config_before"] = before and before.get("EndpointConfigName")
        if before and before.get("EndpointConfigName") == name and before.get("EndpointStatus") == "InService":
            return "already serving", f"endpoint {endpoint} already serves {version} ({name})"
        if before and before.get("EndpointStatus") in BUSY and before.get("EndpointConfigName") != name:
            raise DeploymentFailed(
                f"endpoint {endpoint} is {before['EndpointStatus']} (another change is under way)",
                f"wait until endpoint {endpoint} is InService, then re-run this week's retrain")
        self._call("CreateModel", sm.create_model, exists_ok=True, ModelName=name,
                   ExecutionRoleArn=self.execution_role_arn,
                   PrimaryContainer={"Image": self.image_uri, "ModelDataUrl": url},
                   Tags=[{"Key": "music-feedback:model-version", "Value": version}])
        self._call("CreateEndpointConfig", sm.create_endpoint_config, exists_ok=True, EndpointConfigName=name,
                   ProductionVariants=[{"VariantName": VARIANT, "ModelName": name, "InitialVariantWeight": 1.0,
                                        "InitialInstanceCount": self.instance_count,
                                        "InstanceType": self.instance_type}])
        if before is None:
            self._call("CreateEndpoint", sm.create_endpoint, EndpointName=endpoint, EndpointConfigName=name)
            action = "created"
        elif before.get("EndpointConfigName") == name and before.get("EndpointStatus") in BUSY:
            action = "updated"  # an earlier run's update of this very version is still going: wait for it
        else:
            self._call("UpdateEndpoint", sm.update_endpoint, EndpointName=endpoint, EndpointConfigName=name)
            action = "updated"
        self._wait(endpoint, name, made["endpoint_config_before"])
        return action, f"endpoint {endpoint} {action}: InService on {name} ({version})"

    def _describe(self, endpoint: str) -> dict | None:
        try:
            return self.client().describe_endpoint(EndpointName=endpoint)
        except ClientError as exc:
            err = exc.response.get("Error", {})
            if err.get("Code") == "ValidationException" and "not find" in err.get("Message", "").lower():
                return None
            raise DeploymentFailed(f"DescribeEndpoint {endpoint}: {err.get('Code')}: {err.get('Message')}",
                                   _retry_hint(err.get("Code"))) from None
        except BotoCoreError as exc:
            raise DeploymentFailed(f"SageMaker is not reachable: {exc}", "re-run this week's retrain") from None

    def _call(self, operation: str, fn, exists_ok: bool = False, **kwargs) -> None:
        try:
            fn(**kwargs)
        except ClientError as exc:
            err = exc.response.get("Error", {})
            message = err.get("Message", "")
            if exists_ok and err.get("Code") == "ValidationException" and "already exist" in message.lower():
                return  # an earlier attempt made it: same version, same name, same content
            raise DeploymentFailed(f"{operation}: {err.get('Code', 'error')}: {message}",
                                   _retry_hint(err.get("Code"))) from None
        except ParamValidationError as exc:  # botocore refused the request before sending it
            raise DeploymentFailed(f"{operation}: invalid request: {exc}",
                                   f"check {IMAGE_VAR} and {ROLE_VAR}, then re-run this week's retrain") from None
        except BotoCoreError as exc:
            raise DeploymentFailed(f"{operation}: SageMaker is not reachable: {exc}",
                                   "re-run this week's retrain") from None

    def _wait(self, endpoint: str, config: str, previous: str | None) -> None:
        deadline = time.monotonic() + self.timeout_s
        while True:
            d = self._describe(endpoint)
            if d is None:
                raise DeploymentFailed(f"endpoint {endpoint} disappeared while deploying {config}",
                                       "create the endpoint again by re-running this week's retrain")
            status, reason = d.get("EndpointStatus"), d.get("FailureReason") or "no FailureReason given"
            if status == "InService" and d.get("EndpointConfigName") == config:
                return
            if status == "InService":  # the update was rolled back: the old fleet serves
                raise DeploymentFailed(
                    f"endpoint {endpoint} rolled back to {d.get('EndpointConfigName')}: {reason}",
                    f"see /aws/sagemaker/Endpoints/{endpoint} in CloudWatch Logs, fix the model or image, then "
                    "re-run this week's retrain")
            if status == "UpdateRollbackFailed":
                raise DeploymentFailed(
                    f"endpoint {endpoint} is UpdateRollbackFailed (it may serve a mix of old and new): {reason}",
                    f"put it back on the old configuration by hand (aws sagemaker update-endpoint --endpoint-name "
                    f"{endpoint} --endpoint-config-name {previous}), then re-run this week's retrain")
            if status in FAILED_STATES:
                keeps = (f"the old fleet ({previous}) keeps serving" if previous else
                         "the endpoint serves nothing: delete it (aws sagemaker delete-endpoint) before retrying")
                raise DeploymentFailed(f"endpoint {endpoint} is {status}: {reason}",
                                       f"{keeps}; see /aws/sagemaker/Endpoints/{endpoint} in CloudWatch Logs, fix "
                                       "the model or image, then re-run this week's retrain")
            if time.monotonic() >= deadline:
                raise DeploymentFailed(
                    f"endpoint {endpoint} is still {status} after {self.timeout_s:g} s "
                    f"(MUSIC_FEEDBACK_SAGEMAKER_DEPLOY_TIMEOUT_S)",
                    f"the update goes on in SageMaker: if endpoint {endpoint} turns InService on {config}, the "
                    "batch's version check fails until this week's retrain is re-run (it then finds the version "
                    "serving and promotes it); if it fails, nothing changes")
            time.sleep(max(self.poll_s, 0.0))


def _retry_hint(code: str | None) -> str:
    if code in ("AccessDeniedException", "AccessDenied"):
        return (f"grant the deployer sagemaker:CreateModel, CreateEndpointConfig, CreateEndpoint, UpdateEndpoint, "
                f"DescribeEndpoint and iam:PassRole on {ROLE_VAR} (deploy/iam/model-deployer-sagemaker.json), then "
                "re-run this week's retrain")
    return "fix what the error names, then re-run this week's retrain"
