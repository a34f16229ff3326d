"""Property test: no request the OpenAPI document allows, or nearly allows, makes the service answer 5xx,
and every answer is one the document declares (status, content type and body): the document is the
contract. schemathesis generates the requests (valid and invalid) and sends them over HTTP to a real server;
the token routes are called with a valid link token too, so their successes and refusals are checked."""
from __future__ import annotations

import time

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (content_type_conformance, not_a_server_error, response_schema_conformance,
                                 status_code_conformance)

from music_feedback_tests.service_support import LINKS, PROGRAM, auth, candidate, frame, make_app, sqlite_store

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
PURPOSES = {"/f/{token}": "feedback", "/u/{token}": "unsubscribe", "/o/{token}.gif": "open", "/c/{token}": "click",
            "/v1/feedback": "feedback"}


def valid_token(path: str) -> str:
    return LINKS.sign(PURPOSES[path], PROGRAM, 5, 10 + 5 % 4, "2026-11-23", "email", int(time.time()) + 3600)
from music_feedback_tests.servers import http_service

pytestmark = pytest.mark.integration  # a real server under generated traffic


@pytest.fixture(scope="module")
def service_url(tmp_path_factory):
    store = sqlite_store(tmp_path_factory.mktemp("fuzz"))
    store.put_batch(PROGRAM, "2026-11-23", frame([candidate(i, 10 + i % 4, i / 60) for i in range(1, 60)]))
    with http_service.running(make_app(store, page_size=5, max_per_track=3)) as url:
        yield url


def operations(service_url) -> list:
    doc = httpx.get(f"{service_url}/openapi.json").json()
    schema = schemathesis.openapi.from_dict(doc)
    return [r.ok() for r in schema.get_all_operations()]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_request_gets_a_server_error(service_url, mode):
    ops = operations(service_url)
    assert {op.path for op in ops} >= {"/v1/programs/{program}/channels/{channel}/candidates", "/readyz",
                                       "/v1/feedback", "/f/{token}", "/u/{token}", "/c/{token}",
                                       "/v1/programs/{program}/listeners/{listener}/voice-answers"}
    for op in ops:
        if mode == GenerationMode.NEGATIVE and not any(True for _ in op.iter_parameters()):
            continue  # nothing to make invalid
        @given(case=op.as_strategy(generation_mode=mode))
        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
        def check(case):
            for headers in (auth(), {}, {"Authorization": "Bearer x"}):
                case.call_and_validate(base_url=service_url, headers=headers, checks=CHECKS)
            if "program" in (case.path_parameters or {}):  # the same request on the real program and channel
                case.path_parameters["program"] = PROGRAM
                if "channel" in case.path_parameters:
                    case.path_parameters["channel"] = "email"
                case.call_and_validate(base_url=service_url, headers=auth(), checks=CHECKS)
            if op.path in PURPOSES:  # the same request with a link token that verifies
                if "token" in (case.path_parameters or {}):
                    case.path_parameters["token"] = valid_token(op.path)
                elif isinstance(case.body, dict):
                    case.body["token"] = valid_token(op.path)
                else:
                    return
                case.call_and_validate(base_url=service_url, headers=auth(), checks=CHECKS)

        check()
