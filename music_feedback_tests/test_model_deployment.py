"""Promotion deploys: the SageMaker deployer with the real boto3 client against moto's server (create path)
and against the project's SageMaker stand-in (update, Failed, timeout), the S3 registry on moto's server;
the retrain keeps the old champion (serving and in the registry) when a deployment fails.

moto 5.2's server has no UpdateEndpoint (HTTP 500 "not implemented") and reports every endpoint InService at
once, so the update and failure paths run on music_feedback_tools.standins.sagemaker, which deploys for real:
it reads the model data from moto's S3 and starts the project's model server on it."""
from __future__ import annotations

import io
import tarfile
import uuid
from datetime import date

import boto3
import pytest

from music_feedback.scoring.deployment.embedded import InProcessDeployer
from music_feedback.scoring.deployment.sagemaker import SageMakerDeployer, resource_name
from music_feedback.scoring.registry.local import LocalModelRegistry
from music_feedback.scoring.registry.s3 import S3ModelRegistry
from music_feedback.scoring.retrain import retrain
from music_feedback.scoring.sagemaker_scorer import SageMakerScorer
from music_feedback.scoring.scorer import ScoringError
from music_feedback.scoring.training import train_model
from music_feedback_tools.standins.sagemaker import sagemaker_service

pytestmark = pytest.mark.integration

W1, W2 = date(2026, 11, 8), date(2026, 11, 15)
ROLE = "arn:aws:iam::000000000000:role/music-feedback-sagemaker-execution"
IMAGE = "000000000000.dkr.ecr.us-east-1.amazonaws.com/music-feedback-model:1"


@pytest.fixture(autouse=True)
def aws_credentials(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


@pytest.fixture
def registry(moto_url):
    bucket = f"models-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", region_name="us-east-1", endpoint_url=moto_url).create_bucket(Bucket=bucket)
    return S3ModelRegistry(bucket=bucket, prefix="registry", endpoint_url=moto_url)


def deployer(url, **kw) -> SageMakerDeployer:
    return SageMakerDeployer(endpoint_url=url, image_uri=kw.pop("image_uri", IMAGE),
                             execution_role_arn=kw.pop("execution_role_arn", ROLE), poll_s=0.05,
                             timeout_s=kw.pop("timeout_s", 20.0), **kw)


def champion(registry, model, end=W1):
    registry.register(model, (date(2026, 9, 1), end), {}, {})
    registry.promote(model.model_id, model.version, end, "test")


def scores_with(url, model, frame, endpoint):
    return SageMakerScorer(endpoint_url=url, max_attempts=1).predict(model, frame, 500, endpoint)


# ---------------------------------------------------------------- moto's server: the create path

def test_first_promotion_creates_the_endpoint_on_moto(registry, moto_url, program, outcomes):
    # an endpoint of its own: every moto server in the process shares one SageMaker backend, and the AWS
    # day's retrain may already have created the program's endpoint for the same version
    spec = program.model("affinity")
    spec = spec.model_copy(update={"endpoint": f"sagemaker://{spec.endpoint_name}-{uuid.uuid4().hex[:8]}"})
    d = retrain(spec, outcomes, registry, W1, 0.005, {}, deployer=deployer(moto_url))
    version, name = d["challenger_version"], resource_name(spec.endpoint_name, d["challenger_version"])
    assert d["promoted"] and registry.champion_version(spec.model_id, W1) == version
    assert d["deployment"]["status"] == "deployed" and d["deployment"]["action"] == "created"
    sm = boto3.client("sagemaker", region_name="us-east-1", endpoint_url=moto_url)
    endpoint = sm.describe_endpoint(EndpointName=spec.endpoint_name)
    assert (endpoint["EndpointStatus"], endpoint["EndpointConfigName"]) == ("InService", name)
    model = sm.describe_model(ModelName=name)
    url = model["PrimaryContainer"]["ModelDataUrl"]
    assert model["ExecutionRoleArn"] == ROLE and model["PrimaryContainer"]["Image"] == IMAGE
    assert url == f"s3://{registry.bucket}/registry/{spec.model_id}/versions/{version}/model.tar.gz"
    # the model data is what SageMaker extracts into /opt/ml/model: the registry's two files at the root
    body = boto3.client("s3", region_name="us-east-1", endpoint_url=moto_url).get_object(
        Bucket=registry.bucket, Key=url.split("/", 3)[3])["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
    assert files == {n: registry.get_bytes(f"{spec.model_id}/versions/{version}/{n}")
                     for n in ("model.joblib", "model.json")}
    # the same version again: nothing to change
    again = deployer(moto_url).deploy(spec, version, registry)
    assert (again.status, again.action) == ("deployed", "already serving")


def test_unconfigured_deployer_keeps_the_champion(tmp_path, program, outcomes):
    registry = LocalModelRegistry(root=str(tmp_path / "registry"))
    d = retrain(program.model("propensity"), outcomes, registry, W1, 0.005, {}, deployer=SageMakerDeployer())
    assert not d["promoted"] and d["champion_after"] is None
    assert registry.champion_version("feedback-propensity-v3", W1) is None
    assert d["deployment"]["status"] == "failed"
    assert "MUSIC_FEEDBACK_SAGEMAKER_IMAGE and MUSIC_FEEDBACK_SAGEMAKER_ROLE_ARN unset" in d["deployment"]["detail"]
    assert "NOT promoted" in d["reason"]


def test_embedded_deployer_deploys_nothing_by_design(tmp_path, program, outcomes):
    registry = LocalModelRegistry(root=str(tmp_path / "registry"))
    d = retrain(program.model("affinity"), outcomes, registry, W1, 0.005, {}, deployer=InProcessDeployer())
    assert d["promoted"] and d["deployment"]["status"] == "not needed"
    assert "in-process scorer loads the champion" in d["deployment"]["detail"]


# ---------------------------------------------------------------- the SageMaker stand-in: update, Failed, timeout

@pytest.fixture(scope="module")
def old_and_new(program, outcomes, trained):
    """The affinity champion A (serving, champion from W1) and a newer version B of the same model."""
    from threadpoolctl import threadpool_limits
    a = trained["affinity"]
    with threadpool_limits(limits=1):
        b = train_model(program.model("affinity"), outcomes.head(2500))
    assert a.version != b.version
    return a, b


@pytest.fixture
def serving_a(registry, old_and_new, program, moto_url, tmp_path):
    a, _ = old_and_new
    champion(registry, a)
    endpoint = program.model("affinity").endpoint_name
    a_dir = registry.export(a.model_id, a.version, tmp_path / "a")
    return lambda **kw: sagemaker_service({endpoint: a_dir}, tmp_path, s3_endpoint_url=moto_url, **kw)


def test_promotion_updates_the_endpoint_and_the_batch_scores_with_it(registry, serving_a, old_and_new, program,
                                                                     outcomes):
    a, b = old_and_new
    spec = program.model("affinity")
    registry.register(b, (date(2026, 9, 1), W2), {}, {})
    with serving_a() as (url, control):
        with pytest.raises(ScoringError, match=f"serves {a.version}, but the model to score with is {b.version}"):
            scores_with(url, b, outcomes.head(20), spec.endpoint_name)
        deployment = deployer(url).deploy(spec, b.version, registry)
        assert (deployment.status, deployment.action) == ("deployed", "updated"), deployment.detail
        assert control.calls == ["DescribeEndpoint", "CreateModel", "CreateEndpointConfig", "UpdateEndpoint",
                                 *["DescribeEndpoint"] * (len(control.calls) - 4)]
        assert len(scores_with(url, b, outcomes.head(20), spec.endpoint_name)) == 20  # the version check passes
        assert control.endpoints[spec.endpoint_name]["EndpointConfigName"] == resource_name(spec.endpoint_name,
                                                                                            b.version)


def test_failed_update_keeps_the_old_model_serving(registry, serving_a, old_and_new, program, outcomes):
    a, b = old_and_new
    spec = program.model("affinity")
    registry.register(b, (date(2026, 9, 1), W2), {}, {})
    registry.put_bytes(f"{b.model_id}/versions/{b.version}/model.joblib", b"not a model")  # the container dies
    with serving_a() as (url, control):
        deployment = deployer(url).deploy(spec, b.version, registry)
        assert deployment.failed and f"endpoint {spec.endpoint_name} is Failed" in deployment.detail
        assert "did not pass the ping health check" in deployment.detail
        assert "keeps serving" in deployment.remedy and "re-run this week's retrain" in deployment.remedy
        assert len(scores_with(url, a, outcomes.head(20), spec.endpoint_name)) == 20  # A still answers
    assert registry.champion_version(spec.model_id, W2) == a.version


def test_retrain_whose_deployment_fails_keeps_the_champion(registry, serving_a, old_and_new, program, outcomes):
    """A real API refusal (CreateModel with a role SageMaker cannot use): no promotion, A serves and stays."""
    a, _ = old_and_new
    spec = program.model("affinity")
    with serving_a() as (url, control):
        d = retrain(spec, outcomes.head(2500), registry, W2, -1.0, {},
                    deployer=deployer(url, execution_role_arn="arn:aws:sts::000000000000:assumed-role/x"))
        assert not d["promoted"] and d["champion_after"] == a.version
        assert d["deployment"]["status"] == "failed"
        assert d["deployment"]["detail"].startswith("CreateModel: ValidationException")
        assert f"{a.version} stays champion" in d["reason"]
        assert registry.champion_version(spec.model_id, W2) == a.version
        assert len(scores_with(url, a, outcomes.head(20), spec.endpoint_name)) == 20


def test_deployment_slower_than_the_timeout_fails_and_says_what_follows(registry, serving_a, old_and_new, program,
                                                                        outcomes):
    a, b = old_and_new
    spec = program.model("affinity")
    registry.register(b, (date(2026, 9, 1), W2), {}, {})
    with serving_a(delay_s=2.0) as (url, control):
        deployment = deployer(url, timeout_s=0.3).deploy(spec, b.version, registry)
        assert deployment.failed and "still Updating after 0.3 s" in deployment.detail
        assert "MUSIC_FEEDBACK_SAGEMAKER_DEPLOY_TIMEOUT_S" in deployment.detail
        assert "re-run" in deployment.remedy
        assert len(scores_with(url, a, outcomes.head(20), spec.endpoint_name)) == 20  # meanwhile A serves
