"""The SageMaker scorer with the real boto3 client, pointed at the local SageMaker front (real HTTP)
in front of the project's model servers: batching, splitting under the body limit, retries, errors."""
from __future__ import annotations

from contextlib import ExitStack

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse

from music_feedback.scoring.sagemaker_scorer import SageMakerScorer
from music_feedback.scoring.scorer import InProcessScorer, ScoringError
from music_feedback.serving.front import aws_error, create_front
from music_feedback.serving.model_server import create_app
from music_feedback.serving.threaded import serving

pytestmark = pytest.mark.integration

PROPENSITY, AFFINITY = "feedback-propensity-v3", "music-affinity-v2"


@pytest.fixture(autouse=True)
def aws_credentials(monkeypatch):
    # boto3 signs every request; the local front does not check the signature.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


class Recorder:
    """ASGI middleware: records each request's body size and answers the first `fail` with an error."""

    def __init__(self, app, fail: int = 0, code: str = "ThrottlingException", status: int = 400):
        self.app, self.fail, self.code, self.status, self.sizes = app, fail, code, status, []

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        size = int(dict(scope["headers"]).get(b"content-length", b"0"))
        self.sizes.append(size)
        if self.fail > 0:
            self.fail -= 1
            return await aws_error(self.status, self.code, "Rate exceeded")(scope, receive, send)
        return await self.app(scope, receive, send)


@pytest.fixture(scope="module")
def model_servers(model_dirs):
    with ExitStack() as stack:
        yield {role: stack.enter_context(serving(create_app(d))) for role, d in model_dirs.items()}


@pytest.fixture(scope="module")
def routes(model_servers):
    return {PROPENSITY: model_servers["propensity"], AFFINITY: model_servers["affinity"]}


def front(routes, **kw):
    recorder = Recorder(create_front(routes, kw.pop("max_body_bytes", 6 * 1024 * 1024)), **kw)
    return recorder, serving(recorder)


def scorer(url, **kw) -> SageMakerScorer:
    return SageMakerScorer(endpoint_url=url, region_name="us-east-1", **kw)


@pytest.mark.parametrize("role, endpoint", [("propensity", PROPENSITY), ("affinity", AFFINITY)])
def test_endpoint_scores_equal_in_process(routes, trained, outcomes, role, endpoint):
    rec, srv = front(routes)
    frame = outcomes.head(2345)
    with srv as url:
        got = scorer(url).predict(trained[role], frame, 500, endpoint=endpoint)
    assert np.array_equal(got, InProcessScorer().predict(trained[role], frame, 500))
    assert len(rec.sizes) == 5  # batches of 500: 4 full and one of 345


def test_batch_over_the_body_limit_is_split(routes, trained, outcomes):
    limit = 16_000
    rec, srv = front(routes, max_body_bytes=limit)
    frame = outcomes.head(3000)
    with srv as url:
        got = scorer(url, max_body_bytes=limit).predict(trained["propensity"], frame, 2000, endpoint=PROPENSITY)
    assert np.array_equal(got, InProcessScorer().predict(trained["propensity"], frame, 2000))
    assert len(rec.sizes) > 2 and max(rec.sizes) <= limit


def test_without_splitting_the_front_refuses_naming_the_endpoint(routes, trained, outcomes):
    rec, srv = front(routes, max_body_bytes=16_000)
    with srv as url, pytest.raises(ScoringError, match=rf"endpoint {PROPENSITY} .*ValidationError.*exceeds"):
        scorer(url).predict(trained["propensity"], outcomes.head(2000), 2000, endpoint=PROPENSITY)


@pytest.mark.parametrize("code, status", [("ThrottlingException", 400), ("ServiceUnavailable", 503),
                                          ("InternalFailure", 500)])
def test_throttling_and_5xx_are_retried(routes, trained, outcomes, code, status):
    rec, srv = front(routes, fail=2, code=code, status=status)
    frame = outcomes.head(100)
    with srv as url:
        got = scorer(url, concurrency=1).predict(trained["affinity"], frame, 2000, endpoint=AFFINITY)
    assert np.array_equal(got, InProcessScorer().predict(trained["affinity"], frame, 2000))
    assert len(rec.sizes) == 3  # two refused, the third answered


def test_retries_give_up_naming_the_endpoint(routes, trained, outcomes):
    rec, srv = front(routes, fail=10)
    with srv as url, pytest.raises(ScoringError, match=rf"endpoint {AFFINITY} .*ThrottlingException"):
        scorer(url, max_attempts=2, concurrency=1).predict(trained["affinity"], outcomes.head(10), 2000,
                                                           endpoint=AFFINITY)
    assert len(rec.sizes) == 2


def test_unknown_endpoint_is_a_validation_error(routes, trained, outcomes):
    rec, srv = front(routes)
    with srv as url, pytest.raises(ScoringError, match=r"endpoint no-such-endpoint .*ValidationError.*not found"):
        scorer(url).predict(trained["affinity"], outcomes.head(10), 2000, endpoint="no-such-endpoint")
    assert len(rec.sizes) == 1  # a 400 ValidationError is not retried


def test_model_error_names_the_endpoint(model_servers, trained, outcomes):
    # The affinity endpoint is wrongly backed by the propensity container: it rejects the rows.
    rec, srv = front({AFFINITY: model_servers["propensity"]})
    with srv as url, pytest.raises(ScoringError, match=rf"endpoint {AFFINITY} .*ModelError.*engagement_score"):
        scorer(url).predict(trained["affinity"], outcomes.head(10), 2000, endpoint=AFFINITY)
    assert len(rec.sizes) == 1  # a ModelError is not retried


def test_endpoint_down_names_the_endpoint(trained, outcomes):
    with serving(FastAPI()) as url:
        pass  # the port is closed again
    with pytest.raises(ScoringError, match=rf"endpoint {PROPENSITY} .*not reachable"):
        scorer(url, max_attempts=2).predict(trained["propensity"], outcomes.head(10), 2000, endpoint=PROPENSITY)


@pytest.mark.parametrize("answer", ["<html>oops</html>", '{"predictions": [0.5]}',
                                    '{"model_version": "x", "predictions": [2, 2, 2]}'])
def test_garbage_answer_names_the_endpoint(trained, outcomes, answer):
    garbage = FastAPI()
    garbage.post("/invocations")(lambda: PlainTextResponse(answer))
    with serving(garbage) as upstream:
        rec, srv = front({PROPENSITY: upstream})
        with srv as url, pytest.raises(ScoringError, match=rf"endpoint {PROPENSITY}"):
            scorer(url).predict(trained["propensity"], outcomes.head(3), 2000, endpoint=PROPENSITY)


def test_an_endpoint_serving_another_version_is_refused(routes, trained, outcomes):
    rec, srv = front({PROPENSITY: routes[PROPENSITY]})
    other = trained["propensity"]
    stale = type(other)(**{**other.__dict__, "data_fingerprint": "0" * 64})
    with srv as url, pytest.raises(ScoringError, match=rf"endpoint {PROPENSITY} serves .*deploy"):
        scorer(url).predict(stale, outcomes.head(3), 2000, endpoint=PROPENSITY)


def test_the_front_answers_describe_endpoint_for_the_preflight(routes):
    import boto3
    from botocore.exceptions import ClientError
    with serving(create_front(routes)) as url:
        control = boto3.client("sagemaker", region_name="us-east-1", endpoint_url=url)
        assert control.describe_endpoint(EndpointName=PROPENSITY)["EndpointStatus"] == "InService"
        with pytest.raises(ClientError, match="Could not find endpoint"):
            control.describe_endpoint(EndpointName="no-such-model")
