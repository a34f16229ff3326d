"""The AWS preflight: every missing setting, bucket, table, index, bus or endpoint is named before a day
writes anything. Runs against moto's server, the SES v2 stand-in and the SageMaker front."""
from __future__ import annotations

import json
import uuid

import boto3
import pytest

from music_feedback.aws.preflight import PreflightError, preflight
from music_feedback.aws.settings import AwsConfigError, AwsSettings
from music_feedback.delivery.email.ses import SESv2Sender
from music_feedback.playlists.dynamodb import DynamoDBPlaylistStore
from music_feedback.programs.loader import load_programs
from music_feedback.scoring.cache.dynamodb_cache import DynamoDBScoreCache
from music_feedback.serving.front import create_front
from music_feedback.serving.threaded import serving
from music_feedback_tools.standins import ses
from music_feedback.store.dynamodb import DynamoDBCandidateStore
from music_feedback.warehouse.duckdb_warehouse import DuckDBWarehouse

pytestmark = pytest.mark.integration


@pytest.fixture
def program():
    return load_programs()[0]


@pytest.fixture
def aws(monkeypatch, moto_endpoint, program, small_warehouse):
    """Endpoints of the stand-ins, fresh names, and the resources the preflight looks at."""
    tag = uuid.uuid4().hex[:8]
    with ses.running() as (ses_url, _), serving(create_front({m.endpoint_name: "http://127.0.0.1:9"
                                                              for m in program.scoring_models})) as front:
        env = {"AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": moto_endpoint, "AWS_ENDPOINT_URL_SESV2": ses_url,
               "AWS_ENDPOINT_URL_SAGEMAKER": front, "MUSIC_FEEDBACK_S3_BUCKET": f"bucket-{tag}",
               "MUSIC_FEEDBACK_GLUE_DATABASE": f"db_{tag}", "MUSIC_FEEDBACK_DYNAMODB_TABLE": f"cand-{tag}",
               "MUSIC_FEEDBACK_SCORE_CACHE_TABLE": f"cache-{tag}", "MUSIC_FEEDBACK_EVENT_BUS": f"bus-{tag}",
               "MUSIC_FEEDBACK_PLAYLISTS_TABLE": f"playlists-{tag}", "MUSIC_FEEDBACK_LINK_KEYS_SECRET": f"keys/{tag}",
               "MUSIC_FEEDBACK_ALERTS_TOPIC_ARN": f"arn:aws:sns:us-east-1:123456789012:alerts-{tag}"}
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        s = AwsSettings.from_env()
        resources = {"warehouse": DuckDBWarehouse(path=str(small_warehouse)),
                     "email_sender": SESv2Sender(region="us-east-1", configuration_set="feedback-events"),
                     "candidate_store": DynamoDBCandidateStore(table_name=s.candidates_table),
                     "score_cache": DynamoDBScoreCache(table_name=s.score_cache_table),
                     "playlist_store": DynamoDBPlaylistStore(table_name=s.playlists_table)}
        yield s, resources


def provision(s: AwsSettings, resources: dict) -> None:
    session = boto3.session.Session()
    session.client("s3", region_name=s.region).create_bucket(Bucket=s.bucket)
    session.client("glue", region_name=s.region).create_database(DatabaseInput={"Name": s.glue_database})
    session.client("events", region_name=s.region).create_event_bus(Name=s.event_bus)
    resources["candidate_store"].create_table(ttl=False)
    resources["score_cache"].ensure_table()
    resources["playlist_store"].create_table()
    session.client("secretsmanager", region_name=s.region).create_secret(
        Name=s.link_keys_secret, SecretString=json.dumps({"k1": "0123456789abcdef-key"}))
    session.client("sns", region_name=s.region).create_topic(Name=s.alerts_topic_arn.rsplit(":", 1)[-1])


def test_nothing_provisioned_names_everything_missing(aws, program):
    s, resources = aws
    with pytest.raises(PreflightError) as caught:
        preflight(resources, [program], s)
    text = str(caught.value)
    for expected in (f"bucket {s.bucket} does not exist (MUSIC_FEEDBACK_S3_BUCKET)",
                     f"database {s.glue_database} does not exist (MUSIC_FEEDBACK_GLUE_DATABASE)",
                     f"table {s.candidates_table} does not exist (MUSIC_FEEDBACK_DYNAMODB_TABLE)",
                     f"table {s.score_cache_table} does not exist (MUSIC_FEEDBACK_SCORE_CACHE_TABLE)",
                     f"event bus {s.event_bus} does not exist (MUSIC_FEEDBACK_EVENT_BUS)",
                     f"table {s.playlists_table} does not exist (MUSIC_FEEDBACK_PLAYLISTS_TABLE)",
                     f"secret {s.link_keys_secret} does not exist (MUSIC_FEEDBACK_LINK_KEYS_SECRET)",
                     f"topic {s.alerts_topic_arn} does not exist (MUSIC_FEEDBACK_ALERTS_TOPIC_ARN)"):
        assert expected in text
    assert len(caught.value.problems) == 8, caught.value.problems


def test_a_provisioned_set_passes(aws, program):
    s, resources = aws
    provision(s, resources)
    preflight(resources, [program], s)


def test_a_missing_index_and_endpoint_and_configuration_set_are_named(aws, program, monkeypatch):
    s, resources = aws
    provision(s, resources)
    dynamodb = boto3.session.Session().client("dynamodb", region_name=s.region)
    dynamodb.delete_table(TableName=s.candidates_table)
    from music_feedback.store.dynamodb.table import definition as table_definition
    spec = table_definition(s.candidates_table)
    spec["GlobalSecondaryIndexes"] = spec["GlobalSecondaryIndexes"][:1]
    spec["AttributeDefinitions"] = [a for a in spec["AttributeDefinitions"] if not a["AttributeName"].startswith("GSI2")]
    dynamodb.create_table(**spec)
    resources["email_sender"] = SESv2Sender(region="us-east-1", configuration_set="no-such-set")
    renamed = program.model_copy(update={"scoring_models": [
        m.model_copy(update={"endpoint": "sagemaker://retired-model"}) if m.role == "affinity" else m
        for m in program.scoring_models]})
    with pytest.raises(PreflightError) as caught:
        preflight(resources, [renamed], s)
    text = str(caught.value)
    assert f"table {s.candidates_table} (MUSIC_FEEDBACK_DYNAMODB_TABLE) lacks the index(es) GSI2" in text
    assert "configuration set no-such-set does not exist (MUSIC_FEEDBACK_SES_CONFIGURATION_SET)" in text
    assert "endpoint retired-model does not exist (scoringModels.endpoint of program music-feedback)" in text
    assert len(caught.value.problems) == 3, caught.value.problems


def test_an_unreachable_endpoint_names_its_setting(aws, program, monkeypatch):
    s, resources = aws
    provision(s, resources)
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:9")
    with pytest.raises(PreflightError) as caught:
        preflight(resources, [program], s)
    assert "DynamoDB: endpoint http://127.0.0.1:9 cannot be reached: check AWS_ENDPOINT_URL_DYNAMODB" in str(caught.value)


def test_missing_credentials_are_named(aws, program, monkeypatch, tmp_path):
    s, resources = aws
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(PreflightError, match="STS: no AWS credentials: give the process a role, or set AWS_PROFILE"):
        preflight(resources, [program], s)


def test_refused_credentials_are_named(aws, program, monkeypatch):
    import moto.settings
    s, resources = aws
    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)  # moto checks keys from now on
    with pytest.raises(PreflightError, match=r"STS: the AWS credentials were refused \(InvalidClientTokenId\)"):
        preflight(resources, [program], s)


@pytest.mark.unit
def test_missing_settings_are_named(monkeypatch):
    for var in ("AWS_REGION", "AWS_DEFAULT_REGION", "MUSIC_FEEDBACK_S3_BUCKET"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(AwsConfigError, match="needs AWS_REGION .* and MUSIC_FEEDBACK_S3_BUCKET"):
        AwsSettings.from_env()


@pytest.mark.parametrize("value, why", [
    ("not json", "must be a JSON object"), (json.dumps({"k1": "short"}), "at least 16 characters"),
    (json.dumps({}), "no key"), (json.dumps({"k-1": "0123456789abcdef-key"}), "letters and digits only"),
    (json.dumps({"k1": 5}), "must be a JSON object")])
def test_a_malformed_link_keys_secret_is_named_with_the_fix(aws, program, value, why):
    s, resources = aws
    provision(s, resources)
    boto3.client("secretsmanager", region_name=s.region).put_secret_value(SecretId=s.link_keys_secret,
                                                                           SecretString=value)
    with pytest.raises(PreflightError) as caught:
        preflight(resources, [program], s)
    (problem,) = caught.value.problems
    assert problem.startswith(f"Secrets Manager: secret {s.link_keys_secret} (MUSIC_FEEDBACK_LINK_KEYS_SECRET) "
                              f"is malformed") and why in problem and '{"k1": "<at least 16' in problem


def test_a_missing_alert_topic_setting_is_named(aws, program, monkeypatch):
    s, resources = aws
    provision(s, resources)
    monkeypatch.delenv("MUSIC_FEEDBACK_ALERTS_TOPIC_ARN")
    with pytest.raises(PreflightError) as caught:
        preflight(resources, [program], AwsSettings.from_env())
    (problem,) = caught.value.problems
    assert "set MUSIC_FEEDBACK_ALERTS_TOPIC_ARN" in problem
