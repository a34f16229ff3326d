"""The serving API over real HTTP on loopback: auth, paging with signed cursors, bad input, health."""
from __future__ import annotations

import httpx
import pytest

from music_feedback_tests.service_support import (
    OTHER_KEY, PROGRAM, auth, candidate, frame, make_app, sqlite_store)

pytestmark = pytest.mark.integration

CHANNEL_URL = f"/v1/programs/{PROGRAM}/channels/email/candidates"


@pytest.fixture(params=["sqlite", "dynamodb-moto"])
def store(request, tmp_path):
    if request.param == "sqlite":
        s = sqlite_store(tmp_path)
    else:
        from music_feedback_tests.test_candidate_store import dynamodb_store
        s = dynamodb_store(request.getfixturevalue("moto_endpoint"))
    rows = [candidate(lid, 100 + lid % 3, round(0.5 + lid / 100, 2)) for lid in range(1, 41)]
    rows += [candidate(5, 200, 0.99, channel="voice-assistant"), candidate(6, 101, 0.97, marketplace="DE")]
    s.put_batch(PROGRAM, "2026-11-23", frame(rows))
    return s


@pytest.fixture
def client(store, serve):
    with httpx.Client(base_url=serve(make_app(store, page_size=7, max_per_track=10)), timeout=10) as c:
        yield c


def all_pages(client, params: dict) -> tuple[list[dict], int]:
    items, pages, cursor = [], 0, None
    while True:
        r = client.get(CHANNEL_URL, params={**params, **({"cursor": cursor} if cursor else {})}, headers=auth())
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["count"] == len(body["items"]) <= 7
        items += body["items"]
        pages += 1
        cursor = body["nextCursor"]
        if cursor is None:
            return items, pages


def test_health_endpoints_are_open(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json() == {"status": "ready"}  # open: it names no internals


def test_readyz_is_503_when_the_store_does_not_answer(tmp_path, serve):
    from music_feedback.store import SQLiteCandidateStore
    (tmp_path / "dir").mkdir()
    broken = SQLiteCandidateStore(path=str(tmp_path / "dir"))  # a folder, not a database file
    with httpx.Client(base_url=serve(make_app(broken))) as c:
        r = c.get("/readyz")
    assert r.status_code == 503 and r.json() == {"status": "unavailable"}  # the reason is logged, not shown


def test_channel_pages_cover_the_query_in_order_with_the_per_track_cap(client):
    items, pages = all_pages(client, {"minScore": 0.5})
    keys = [(-i["score"], i["listener_id"], i["track_id"]) for i in items]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    assert all(i["score"] >= 0.5 and i["channel"] == "email" and i["status"] == "pending" for i in items)
    per_track = {}
    for i in items:
        per_track[i["track_id"]] = per_track.get(i["track_id"], 0) + 1
    assert max(per_track.values()) <= 10
    assert per_track == {100: 10, 101: 10, 102: 10}  # 41 rows, 13-15 a track: the cap bit
    assert pages == 5


def test_limit_marketplace_and_pending_only(client, store):
    items, _ = all_pages(client, {"limit": 9})
    assert len(items) == 9
    de, _ = all_pages(client, {"marketplace": "DE"})
    assert [(i["listener_id"], i["marketplace"]) for i in de] == [(6, "DE")]
    store.set_status(PROGRAM, "2026-11-23", [(6, 101, "email")], "sent")
    assert all_pages(client, {"marketplace": "DE"})[0] == []


def test_cursor_is_bound_to_its_query_and_signed(client):
    first = client.get(CHANNEL_URL, params={"minScore": 0.5}, headers=auth()).json()
    cursor = first["nextCursor"]
    other = client.get(CHANNEL_URL, params={"minScore": 0.6, "cursor": cursor}, headers=auth())
    assert other.status_code == 422 and other.json()["parameter"] == "cursor"
    assert "another query" in other.json()["message"]
    body, mac = cursor.split(".")
    forged = client.get(CHANNEL_URL, params={"minScore": 0.5, "cursor": body[:-2] + "AA." + mac}, headers=auth())
    assert forged.status_code == 422 and "signature" in forged.json()["message"]
    for junk in ("x", "a.b.c", "!!!.???"):
        r = client.get(CHANNEL_URL, params={"minScore": 0.5, "cursor": junk}, headers=auth())
        assert r.status_code == 422 and r.json()["parameter"] == "cursor", junk


@pytest.mark.parametrize("params, parameter", [
    ({"minScore": "1.5"}, "minScore"), ({"minScore": "abc"}, "minScore"), ({"minScore": "nan"}, "minScore"),
    ({"limit": "0"}, "limit"), ({"limit": "100001"}, "limit"), ({"limit": "ten"}, "limit"),
    ({"marketplace": "us"}, "marketplace"), ({"marketplace": "XX"}, "marketplace"),
])
def test_bad_parameters_are_422_naming_the_parameter(client, params, parameter):
    r = client.get(CHANNEL_URL, params=params, headers=auth())
    assert r.status_code == 422
    assert r.json()["parameter"] == parameter and parameter in r.json()["message"]


def test_auth_401_and_404(client):
    assert client.get(CHANNEL_URL).status_code == 401
    assert client.get(CHANNEL_URL, headers={"Authorization": "Bearer wrong-key-0000000000"}).status_code == 401
    assert client.get(CHANNEL_URL, headers={"Authorization": "Basic abc"}).status_code == 401
    assert client.get(CHANNEL_URL, params={"limit": "x"}).status_code == 401  # no key: nothing else is said
    # A program the key may not read is answered as an unknown one: a key learns no other program's name.
    assert client.get(CHANNEL_URL, headers=auth(OTHER_KEY)).status_code == 404
    assert client.get("/v1/programs/nope/channels/email/candidates", headers=auth()).status_code == 404
    r = client.get(f"/v1/programs/{PROGRAM}/channels/sms/candidates", headers=auth())
    assert r.status_code == 404 and r.json()["parameter"] == "channel"


def test_listener_and_track_lookups(client, store):
    r = client.get(f"/v1/programs/{PROGRAM}/listeners/5/candidates", headers=auth()).json()
    assert [(i["track_id"], i["channel"]) for i in r["items"]] == [(200, "voice-assistant"), (102, "email")]
    voice = client.get(f"/v1/programs/{PROGRAM}/listeners/5/candidates", params={"channel": "voice-assistant"},
                       headers=auth()).json()
    assert [i["track_id"] for i in voice["items"]] == [200]
    store.set_status(PROGRAM, "2026-11-23", [(5, 200, "voice-assistant")], "consumed")
    r = client.get(f"/v1/programs/{PROGRAM}/listeners/5/candidates", headers=auth()).json()
    assert [i["track_id"] for i in r["items"]] == [102]
    t = client.get(f"/v1/programs/{PROGRAM}/tracks/101/candidates", params={"date": "2026-11-23"}, headers=auth())
    assert t.status_code == 200 and t.json()["count"] == 15
    assert t.json()["items"][0]["listener_id"] == 6
    bad = client.get(f"/v1/programs/{PROGRAM}/tracks/101/candidates", params={"date": "23/11"}, headers=auth())
    assert bad.status_code == 422 and bad.json()["parameter"] == "date"
    neg = client.get(f"/v1/programs/{PROGRAM}/listeners/-1/candidates", headers=auth())
    assert neg.status_code == 422 and neg.json()["parameter"] == "listener"


def test_metrics_count_requests_per_route_and_status(client):
    client.get(CHANNEL_URL, headers=auth())
    client.get(CHANNEL_URL)
    text = client.get("/metrics").text
    route = "/v1/programs/{program}/channels/{channel}/candidates"
    assert f'music_feedback_http_requests_total{{method="GET",route="{route}",status="200"}} 1.0' in text
    assert f'music_feedback_http_requests_total{{method="GET",route="{route}",status="401"}} 1.0' in text
    assert "music_feedback_http_request_duration_seconds_bucket" in text


def test_openapi_documents_bounds(client):
    doc = client.get("/openapi.json").json()
    params = {p["name"]: p for p in doc["paths"]["/v1/programs/{program}/channels/{channel}/candidates"]["get"]
              ["parameters"]}
    assert params["minScore"]["schema"]["minimum"] == 0.0 and params["minScore"]["schema"]["maximum"] == 1.0
    assert params["limit"]["schema"]["maximum"] == 100_000
