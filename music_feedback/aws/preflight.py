"""Checks that run before a day on AWS writes anything: credentials, region, endpoints, and that every
bucket, table, index, bus and endpoint the adapters use exists. Each problem names the setting or the
service to fix; all of them are reported at once."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import os

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

from music_feedback.aws.settings import AwsSettings, endpoint_of, endpoint_setting
from music_feedback.delivery.link_secret import SECRET_VAR, LinkKeysError, SecretLinkKeys
from music_feedback.delivery.link_keys import KEYS_VAR
from music_feedback.store.dynamodb.table import definition


class PreflightError(RuntimeError):
    def __init__(self, problems: list[str]):
        super().__init__("the AWS adapter set is not ready:\n" + "\n".join(f"  - {p}" for p in problems))
        self.problems = problems


def _client(service: str, s: AwsSettings):
    # A fresh session: the default one keeps the credentials it resolved first, even after they are gone.
    return boto3.session.Session().client(service, region_name=s.region,
                        config=Config(retries={"mode": "standard", "max_attempts": 2}, connect_timeout=5,
                                      read_timeout=20))


def _explain(service_id: str, what: str, exc: Exception) -> str:
    """One line naming the service, what was checked and what to fix."""
    if isinstance(exc, NoCredentialsError):
        return (f"{service_id}: no AWS credentials: give the process a role, or set AWS_PROFILE, or "
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
    if isinstance(exc, EndpointConnectionError):
        return (f"{service_id}: endpoint {endpoint_of(service_id) or 'of the region'} cannot be reached: check "
                f"{endpoint_setting(service_id)} (or AWS_ENDPOINT_URL) and AWS_REGION")
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = err.get("Code", "")
        if code in ("InvalidClientTokenId", "UnrecognizedClientException", "SignatureDoesNotMatch",
                    "ExpiredToken", "InvalidSignatureException", "AuthFailure"):
            return f"{service_id}: the AWS credentials were refused ({code}): check the role, profile or keys"
        if code in ("AccessDenied", "AccessDeniedException", "403"):
            return f"{service_id}: access denied to {what}: grant the policy in deploy/iam/"
        return f"{service_id}: {what}: {code} {err.get('Message', '')}".rstrip()
    return f"{service_id}: {what}: {type(exc).__name__}: {exc}"


def _missing(exc: Exception, *codes: str) -> bool:
    return isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") in codes


def _guard(service_id: str, what: str, missing_codes: tuple[str, ...], missing_message: str,
           call: Callable[[], object]) -> str | None:
    try:
        call()
    except Exception as exc:  # every failure becomes a line of the report
        return missing_message if _missing(exc, *missing_codes) else _explain(service_id, what, exc)
    return None


def _dynamodb_table(s: AwsSettings, table: str, indexes: list[str], setting: str, create: str) -> str | None:
    holder = {}

    def describe():
        holder["t"] = _client("dynamodb", s).describe_table(TableName=table)["Table"]

    problem = _guard("DynamoDB", f"table {table}", ("ResourceNotFoundException",),
                     f"DynamoDB: table {table} does not exist ({setting}): {create}", describe)
    if problem or not indexes:
        return problem
    have = {i["IndexName"] for i in holder["t"].get("GlobalSecondaryIndexes", [])}
    lost = [i for i in indexes if i not in have]
    return (f"DynamoDB: table {table} ({setting}) lacks the index(es) {', '.join(lost)}: {create}"
            if lost else None)


def checks(s: AwsSettings, resources: dict, programs: list) -> list[Callable[[], str | None]]:
    cand_indexes = [i["IndexName"] for i in definition(s.candidates_table)["GlobalSecondaryIndexes"]]
    out = [
        lambda: _guard("STS", "the caller's identity", (), "", lambda: _client("sts", s).get_caller_identity()),
        lambda: _guard("S3", f"bucket {s.bucket}", ("404", "NoSuchBucket", "NotFound"),
                       f"S3: bucket {s.bucket} does not exist (MUSIC_FEEDBACK_S3_BUCKET)",
                       lambda: _client("s3", s).head_bucket(Bucket=s.bucket)),
        lambda: _guard("Glue", f"database {s.glue_database}", ("EntityNotFoundException",),
                       f"Glue: database {s.glue_database} does not exist (MUSIC_FEEDBACK_GLUE_DATABASE)",
                       lambda: _client("glue", s).get_database(Name=s.glue_database)),
        lambda: _dynamodb_table(s, s.candidates_table, cand_indexes, "MUSIC_FEEDBACK_DYNAMODB_TABLE",
                                "create it with `music-feedback store create-table`"),
        lambda: _dynamodb_table(s, s.score_cache_table, [], "MUSIC_FEEDBACK_SCORE_CACHE_TABLE",
                                "create it from deploy/infrastructure"),
        lambda: _guard("EventBridge", f"bus {s.event_bus}", ("ResourceNotFoundException",),
                       f"EventBridge: event bus {s.event_bus} does not exist (MUSIC_FEEDBACK_EVENT_BUS)",
                       lambda: _client("events", s).describe_event_bus(Name=s.event_bus)),
        lambda: _guard("CloudWatch", f"namespace {s.metrics_namespace}", (), "",
                       lambda: _client("cloudwatch", s).list_metrics(Namespace=s.metrics_namespace)),
        lambda: _ses(s, resources.get("email_sender")),
        lambda: _dynamodb_table(s, s.playlists_table, [], "MUSIC_FEEDBACK_PLAYLISTS_TABLE",
                                "create it with `music-feedback aws provision`"),
        lambda: _link_keys(s),
        lambda: _alerts_topic(s),
    ]
    feedback = resources.get("feedback_store")
    if hasattr(feedback, "check"):
        out.append(lambda: _call_check("DynamoDB", feedback.check))
    for program in programs:
        for model in program.scoring_models:
            out.append(lambda n=model.endpoint_name, p=program.program_id: _guard(
                "SageMaker", f"endpoint {n}", ("ValidationException",),
                f"SageMaker: endpoint {n} does not exist (scoringModels.endpoint of program {p})",
                lambda: _client("sagemaker", s).describe_endpoint(EndpointName=n)))
        c = program.connector
        out.append(lambda c=c: _call_check(
            "Redshift", lambda: resources["warehouse"].require_contract(c.connector_id, c.config.table)))
    return out


def _call_check(service_id: str, fn: Callable[[], object]) -> str | None:
    try:
        fn()
    except Exception as exc:
        return f"{service_id}: {exc}"
    return None


def _link_keys(s: AwsSettings) -> str | None:
    """Every task signs and verifies links with the secret's keys: it must exist and hold usable keys."""
    if os.environ.get(KEYS_VAR):
        return None  # the keys are given to the task itself
    try:
        SecretLinkKeys(secret_id=s.link_keys_secret, region_name=s.region).fetch()
    except LinkKeysError as exc:
        return str(exc)
    except Exception as exc:
        return _explain("Secrets Manager", f"secret {s.link_keys_secret} ({SECRET_VAR})", exc)
    return None


def _alerts_topic(s: AwsSettings) -> str | None:
    if not s.alerts_topic_arn:
        return ("SNS: no alert topic: set MUSIC_FEEDBACK_ALERTS_TOPIC_ARN to the ARN of the topic run-failure "
                "alerts go to (`music-feedback aws provision` creates music-feedback-alerts)")
    return _guard("SNS", f"topic {s.alerts_topic_arn}", ("NotFound", "NotFoundException"),
                  f"SNS: topic {s.alerts_topic_arn} does not exist (MUSIC_FEEDBACK_ALERTS_TOPIC_ARN)",
                  lambda: _client("sns", s).get_topic_attributes(TopicArn=s.alerts_topic_arn))


def _ses(s: AwsSettings, sender) -> str | None:
    config_set = getattr(sender, "configuration_set", None)
    problem = _guard("SESv2", "the account", (), "", lambda: _client("sesv2", s).get_account())
    if problem or not config_set:
        return problem
    return _guard("SESv2", f"configuration set {config_set}", ("NotFoundException",),
                  f"SESv2: configuration set {config_set} does not exist (MUSIC_FEEDBACK_SES_CONFIGURATION_SET)",
                  lambda: _client("sesv2", s).get_configuration_set(ConfigurationSetName=config_set))


def preflight(resources: dict, programs: list, s: AwsSettings | None = None) -> None:
    """Raise PreflightError listing every problem; return quietly when the set is ready."""
    s = s or AwsSettings.from_env()
    todo = checks(s, resources, programs)
    with ThreadPoolExecutor(max_workers=8) as pool:
        problems = [p for p in pool.map(lambda f: f(), todo) if p]
    if problems:
        raise PreflightError(problems)
