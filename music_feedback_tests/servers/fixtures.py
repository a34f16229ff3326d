"""pytest fixtures over the servers (registered by conftest.py's pytest_plugins)."""
from __future__ import annotations

import os

import pytest

from music_feedback.store.dynamodb import local as dynamodb_local
from music_feedback_tools.standins import moto as moto_server
from music_feedback_tests.servers import http_service

# Credentials for local servers only: boto3 needs some, and neither server checks them.
FAKE_AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="session")
def fake_aws_env():
    saved = {k: os.environ.get(k) for k in FAKE_AWS}
    os.environ.update(FAKE_AWS)
    yield FAKE_AWS
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def moto_endpoint(fake_aws_env):
    with moto_server.running() as url:
        yield url


@pytest.fixture(scope="session")
def dynamodb_local_endpoint(fake_aws_env):
    reason = dynamodb_local.missing_reason()
    if reason and os.environ.get("CI"):
        pytest.fail(reason)  # CI installs it (make test); a missing one there is a build error
    if reason:
        pytest.skip(reason)
    with dynamodb_local.running() as url:
        yield url


@pytest.fixture
def serve():
    """serve(app) -> base URL of `app` on a real uvicorn over loopback, stopped after the test."""
    stack = []

    def start(app) -> str:
        cm = http_service.running(app)
        url = cm.__enter__()
        stack.append(cm)
        return url

    yield start
    for cm in reversed(stack):
        cm.__exit__(None, None, None)


@pytest.fixture(scope="session")
def postgres_server():
    """A PostgreSQL server of the test session's own (see music_feedback_tools.standins.postgres)."""
    from music_feedback_tools.standins import postgres
    with postgres.running() as server:
        yield server


@pytest.fixture(scope="session")
def postgres_warehouse(postgres_server, small_warehouse):
    """The small generated warehouse copied into a database of the test server: the Redshift stand-in."""
    from music_feedback.warehouse.load_postgres import load_warehouse
    postgres_server.create_database("warehouse")
    server = postgres_server.with_database("warehouse")
    load_warehouse(small_warehouse, server)
    return server
