"""Every stand-in the AWS adapter set needs, started together, and the environment that points the set
at them: moto's server (S3, Glue, CloudWatch, EventBridge, STS), DynamoDB Local, PostgreSQL for Redshift
(loaded with the embedded warehouse), and the SES v2 stand-in, which delivers into a Maildir. The
SageMaker front starts later, once there are models to serve (see `sagemaker_endpoints`)."""
from __future__ import annotations

import os
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Iterator

import boto3

REGION = "us-east-1"
BUCKET = "music-feedback-demo"


@contextmanager
def aws_standins(home: Path, warehouse: Path) -> Iterator[dict[str, str]]:
    from music_feedback_tools.standins import moto, postgres, ses
    from music_feedback.store.dynamodb import local as dynamodb_local
    from music_feedback.warehouse.load_postgres import load_warehouse
    reason = dynamodb_local.missing_reason()
    if reason:
        raise RuntimeError(reason)
    with ExitStack() as stack:
        moto_url = stack.enter_context(moto.running())
        dynamodb_url = stack.enter_context(dynamodb_local.running())
        pg = stack.enter_context(postgres.running())
        load_warehouse(warehouse, pg)
        ses_url, _ = stack.enter_context(ses.running(inbox=str(home / "outbox")))
        yield {
            "MUSIC_FEEDBACK_ENV": "aws", "MUSIC_FEEDBACK_HOME": str(home),
            "DAGSTER_HOME": str(home / "dagster_home"),
            # boto3 signs every call; no stand-in checks the keys, and DynamoDB Local wants [A-Za-z0-9].
            "AWS_ACCESS_KEY_ID": "demo", "AWS_SECRET_ACCESS_KEY": "demo", "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION, "AWS_ENDPOINT_URL": moto_url, "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_url,
            "AWS_ENDPOINT_URL_SESV2": ses_url, "MUSIC_FEEDBACK_S3_BUCKET": BUCKET,
            "MUSIC_FEEDBACK_SES_CONFIGURATION_SET": "feedback-events",
            # a promotion deploys to the endpoint (moto's SageMaker: the create path) before the registry names it
            "MUSIC_FEEDBACK_SAGEMAKER_IMAGE": f"000000000000.dkr.ecr.{REGION}.amazonaws.com/music-feedback-model:demo",
            "MUSIC_FEEDBACK_SAGEMAKER_ROLE_ARN": "arn:aws:iam::000000000000:role/music-feedback-sagemaker-execution",
            "MUSIC_FEEDBACK_SAGEMAKER_DEPLOY_POLL_S": "0.1",
            # moto's account; `aws provision` creates the topic and the link-keys secret
            "MUSIC_FEEDBACK_ALERTS_TOPIC_ARN": f"arn:aws:sns:{REGION}:123456789012:music-feedback-alerts",
            **postgres.redshift_env(pg),
        }


@contextmanager
def sagemaker_endpoints(program, registry, day, folder: Path) -> Iterator[str]:
    """The day's champion models behind the SageMaker front, as the endpoints the program names; points
    the runtime and control-plane clients at it."""
    from music_feedback.serving.threaded import sagemaker_stack
    dirs = {}
    for model in program.scoring_models:
        version = registry.champion_version(model.model_id, day)
        dirs[model.endpoint_name] = registry.export(model.model_id, version, folder / model.endpoint_name)
    with sagemaker_stack(dirs) as url, environ({"AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": url,
                                                "AWS_ENDPOINT_URL_SAGEMAKER": url}):
        yield url


@contextmanager
def environ(values: dict[str, str]) -> Iterator[None]:
    """Set variables for the block (child processes inherit them), then restore what was there. boto3's
    default session is made anew on both sides: it keeps the credentials it first resolved, and DynamoDB
    Local keeps a database per access key, so a client made with earlier credentials sees no tables."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    boto3.setup_default_session()
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        boto3.setup_default_session()
