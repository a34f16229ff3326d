"""The listener endpoints over real HTTP: a GET changes nothing, a POST records once, bad input gets a 4xx
naming the problem and stores nothing; tracking, unsubscribe and the voice API."""
from __future__ import annotations

import sqlite3
import time
from contextlib import closing

import httpx
import pytest

from music_feedback.delivery.holdout import is_held_out
from music_feedback.feedback.port import LEDGER_SCHEMA
from music_feedback.feedback.sqlite_store import SQLiteFeedbackStore
from music_feedback.programs.loader import load_programs
from music_feedback_tests.service_support import (LINKS, OTHER_KEY, PROGRAM, auth, candidate, frame, make_app,
                                                  sqlite_store)

pytestmark = pytest.mark.integration

DAY = "2026-11-23"
L, T = 11, 300  # a listener with a pending email request (sent) and a pending voice candidate
OTHER = "podcast-feedback"  # a second program: an unsubscribe must reach it too


def _ledger(rows):
    import polars as pl
    return pl.DataFrame([{"batch_date": DAY, "listener_id": lid, "track_id": tid, "channel": ch, "state": "pending",
                          "campaign": "US-rock", "marketplace": "US", "genre": "rock", "track_name": f"Track {tid}",
                          "artist_id": 1, "score": 0.9, "send_at": 0.0, "send_before": 1e12}
                         for lid, tid, ch in rows], schema=LEDGER_SCHEMA)


@pytest.fixture
def env(tmp_path, serve):
    yield from build_env(tmp_path, serve, SQLiteFeedbackStore(path=str(tmp_path / "feedback.sqlite")))


def build_env(tmp_path, serve, feedback):
    store = sqlite_store(tmp_path)
    listeners = [L, 12, 13] + [lid for lid in range(14, 400) if is_held_out_id(lid)][:1]
    rows = [candidate(lid, T, 0.9) for lid in listeners] + \
           [candidate(lid, T, 0.8, channel="voice-assistant") for lid in listeners]
    store.put_batch(PROGRAM, DAY, frame(rows))
    feedback.plan(PROGRAM, _ledger([(lid, T, "email") for lid in listeners]))
    feedback.plan(OTHER, _ledger([(L, T, "email")]))
    feedback.claim(PROGRAM, DAY, "email", [(L, T)], 100.0)
    feedback.settle(PROGRAM, DAY, "email", [((L, T), "sent", "", "<m@x>")], 101.0)
    main = load_programs()[0]
    app = make_app(store, feedback=feedback, programs=[main, main.model_copy(update={"program_id": OTHER})])
    with httpx.Client(base_url=serve(app), timeout=10, event_hooks={"response": [no_server_error]}) as client:
        yield client, store, feedback, listeners


def no_server_error(response: httpx.Response) -> None:
    """Whatever a test sends, a 5xx is a bug: fail at the response that shows it."""
    if response.status_code >= 500:
        response.read()
        pytest.fail(f"{response.request.method} {response.request.url.path}: {response.status_code} {response.text}")


def is_held_out_id(lid: int) -> bool:
    from music_feedback.programs.loader import load_programs
    return is_held_out(load_programs()[0], lid)


def token(purpose="feedback", listener=L, expires=None, program=PROGRAM) -> str:
    return LINKS.sign(purpose, program, listener, T, DAY, "email", expires or int(time.time()) + 3600)


def form(rating="up", sid="submission-1", **extra) -> dict:
    return {"rating": rating, "submissionId": sid, **extra}


def snapshot(feedback) -> dict:
    """Every row of every table of the feedback store: 'changes nothing' means this is equal after."""
    with closing(sqlite3.connect(feedback.path)) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {t: sorted(conn.execute(f'SELECT * FROM "{t}"').fetchall(), key=repr) for t in tables}


def nothing_stored(feedback, listener=L) -> bool:
    return feedback.feedback(PROGRAM, listener, T) is None and not [
        e for e in feedback.events(PROGRAM) if e["kind"].startswith("feedback.")]


def test_get_shows_the_form_and_changes_nothing(env):
    client, store, feedback, _ = env
    before = snapshot(feedback)
    r = client.get(f"/f/{token()}")
    assert r.status_code == 200 and "What did you think of Track 300?" in r.text
    assert 'name="submissionId"' in r.text and 'value="jazz"' in r.text and "<script" not in r.text
    assert " checked" not in r.text and "already answered" not in r.text
    assert snapshot(feedback) == before and nothing_stored(feedback)
    assert [c["status"] for c in store.for_listener(PROGRAM, L)] == ["pending", "pending"]


def test_get_after_an_answer_is_prefilled_and_escaped(env):
    client, _, feedback, _ = env
    client.post(f"/f/{token()}", data=form(rating="down", tags=["jazz", "rock"], comment="<script>x</script>"))
    before = snapshot(feedback)
    r = client.get(f"/f/{token()}")
    assert r.status_code == 200 and "already answered" in r.text
    assert 'value="down" checked' in r.text and 'value="up" required checked' not in r.text
    assert 'value="jazz" checked' in r.text and 'value="rock" checked' in r.text and 'value="pop" checked' not in r.text
    assert ">&lt;script&gt;x&lt;/script&gt;</textarea>" in r.text and "<script>" not in r.text
    assert snapshot(feedback) == before


def test_a_post_records_everything_once(env):
    client, store, feedback, _ = env
    r = client.post(f"/f/{token()}", data=form(tags=["rock", "pop"], comment="<script>alert(1)</script>"))
    assert r.status_code == 200 and "Thank you!" in r.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in r.text and "<script>" not in r.text
    stored = feedback.feedback(PROGRAM, L, T)
    assert stored["rating"] == 1 and stored["tags"] == ["pop", "rock"] and stored["delivered_at"] == 101.0
    assert [e["kind"] for e in feedback.events(PROGRAM)] == ["feedback.submitted"]
    assert feedback.track_metrics(PROGRAM, T) == {"thumbs_up": 1, "thumbs_down": 0, "responses": 1}
    status = {c["channel"]: c["status"] for c in store.for_listener(PROGRAM, L)}
    assert status == {"email": "consumed", "voice-assistant": "cancelled"}
    # the same form again (a double click) changes nothing; a new answer updates and moves the vote
    assert client.post(f"/f/{token()}", data=form(tags=["rock", "pop"], comment="<script>alert(1)</script>")
                       ).status_code == 200
    assert len(feedback.events(PROGRAM)) == 1
    r = client.post("/v1/feedback", json={"token": token(), "rating": "down", "submissionId": "submission-2"})
    assert r.status_code == 200 and r.json()["outcome"] == "updated"
    assert feedback.track_metrics(PROGRAM, T) == {"thumbs_up": 0, "thumbs_down": 1, "responses": 1}
    r = client.post(f"/f/{token()}", data=form(sid="submission-3", tags=["jazz"]))
    assert r.status_code == 200 and "Your feedback is updated" in r.text
    assert feedback.track_metrics(PROGRAM, T) == {"thumbs_up": 1, "thumbs_down": 0, "responses": 1}
    assert len(snapshot(feedback)["feedback"]) == 1 and feedback.feedback(PROGRAM, L, T)["revisions"] == 3
    assert [e["kind"] for e in feedback.events(PROGRAM)] == ["feedback.submitted"] + ["feedback.updated"] * 2
    r = client.post("/v1/feedback", json={"token": token(), "rating": "up", "submissionId": "submission-2"})
    assert r.status_code == 409 and r.json()["parameter"] == "submissionId"


def test_a_line_break_counts_as_one_character(env):
    """Browsers count a textarea's line break as one character against maxlength but send it as CRLF:
    a comment the page allowed must not be refused as too long."""
    client, _, feedback, _ = env
    comment = "first line" + "\n" + "x" * 189
    r = client.post(f"/f/{token()}", data=form(comment=comment.replace("\n", "\r\n")))
    assert r.status_code == 200, r.text
    assert feedback.feedback(PROGRAM, L, T)["comment"] == comment


@pytest.mark.parametrize("body, status, named", [
    (form(comment="x" * 201), 422, "201 characters"),
    (form(tags=["polka"]), 422, "unknown tag"),
    ({"submissionId": "submission-1"}, 422, "rating is required"),
    (form(mood="happy"), 422, "unknown field"),
    (form(rating="meh"), 422, "rating must be"),
    (form(sid="x"), 422, "submissionId must be"),
])
def test_bad_form_input_is_named_and_stores_nothing(env, body, status, named):
    client, _, feedback, _ = env
    before = snapshot(feedback)
    r = client.post(f"/f/{token()}", data=body)
    assert r.status_code == status and named in r.text
    assert snapshot(feedback) == before and nothing_stored(feedback)


def test_bad_tokens_and_bodies(env):
    client, _, feedback, _ = env
    before = snapshot(feedback)
    good = token()
    forged = good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB")
    cases = [
        (client.post(f"/f/{forged}", data=form()), 403, "signature is invalid"),
        (client.post(f"/f/{token(expires=int(time.time()) - 1)}", data=form()), 410, "expired"),
        (client.post(f"/f/{token('unsubscribe')}", data=form()), 403, "not a feedback link"),
        (client.post(f"/f/{good}", json=form()), 415, "x-www-form-urlencoded"),
        (client.post("/v1/feedback", content=b"rating=up", headers={"content-type": "text/plain"}), 415, "application/json"),
        (client.post("/v1/feedback", content=b"{not json", headers={"content-type": "application/json"}), 400, "not valid JSON"),
        (client.post("/v1/feedback", json=["a"]), 422, "JSON object"),
        (client.post("/v1/feedback", json={"rating": "up", "submissionId": "submission-9"}), 422, "token is required"),
        (client.post("/v1/feedback", json={"token": good, "rating": 1, "submissionId": "submission-9"}), 422, "must be a string"),
        (client.post("/v1/feedback", json={"token": forged, "rating": "up", "submissionId": "submission-9"}), 403, "signature"),
        (client.get("/f/not-a-token-at-all"), 400, "malformed"),
    ]
    for r, status, named in cases:
        assert r.status_code == status and named in r.text, (r.status_code, r.text[:300])
    assert snapshot(feedback) == before and nothing_stored(feedback)


def test_tracking_records_events_and_redirects_only_home(env):
    client, _, feedback, _ = env
    r = client.get(f"/o/{token('open')}.gif", headers={"user-agent": "Mozilla/5.0 (GoogleImageProxy)"})
    assert r.status_code == 200 and r.headers["content-type"] == "image/gif" and r.content.startswith(b"GIF89a")
    target = f"/f/{token()}"
    r = client.get(f"/c/{token('click')}", params={"to": target}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == target
    r = client.get(f"/c/{token('click')}", params={"to": f"/u/{token('unsubscribe')}"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/u/")
    for evil in ("https://evil.example/f/abc", "//evil.example/f/abcdefghijk", "/admin", f"{target}\n"):
        r = client.get(f"/c/{token('click')}", params={"to": evil}, follow_redirects=False)
        assert r.status_code == 400 and "path on this service" in r.json()["message"]
    opened = feedback.events(PROGRAM, "open")
    assert len(opened) == 1 and opened[0]["detail"]["likely_machine"] is True
    assert len(feedback.events(PROGRAM, "click")) == 2
    assert client.get(f"/o/{token('click')}.gif").status_code == 403  # a click token is not an open token


def test_unsubscribe_get_shows_post_opts_out_everywhere(env):
    client, store, feedback, _ = env
    before = snapshot(feedback)
    r = client.get(f"/u/{token('unsubscribe')}")
    assert r.status_code == 200 and "Unsubscribe" in r.text and feedback.suppressed() == set()
    assert snapshot(feedback) == before
    r = client.post(f"/u/{token('unsubscribe')}", data={"List-Unsubscribe": "One-Click"})
    assert r.status_code == 200 and feedback.suppressed() == {L}
    assert feedback.ledger_row(OTHER, DAY, L, T, "email")["state"] == "cancelled"  # not only this program's
    assert feedback.ledger_row(PROGRAM, DAY, 12, T, "email")["state"] == "pending"  # nor anyone else's
    for program in (PROGRAM, OTHER):
        r = client.post(f"/f/{token(program=program)}", data=form(sid=f"opted-out-{program}"))
        assert r.status_code == 403 and "opted out" in r.text
    assert nothing_stored(feedback) and feedback.feedback(OTHER, L, T) is None
    voice = client.get(f"/v1/programs/{PROGRAM}/listeners/{L}/voice-prompt", params={"track": T}, headers=auth())
    assert voice.json() == {"ask": False, "reason": "unsubscribed: the listener unsubscribed (opted out of every program)",
                            "prompt": None,
                            "responseOptions": [], "batchDate": None}


def test_voice_asks_records_and_cancels_email(env):
    client, store, feedback, listeners = env
    url = f"/v1/programs/{PROGRAM}/listeners/12"
    assert client.get(f"{url}/voice-prompt", params={"track": T}).status_code == 401
    yes = {"trackId": T, "answer": "yes", "submissionId": "voice-0001"}
    assert client.post(f"{url}/voice-answers", json=yes).status_code == 401
    assert client.post(f"{url}/voice-answers", json=yes, headers=auth(OTHER_KEY)).status_code == 404
    assert feedback.feedback(PROGRAM, 12, T) is None
    r = client.get(f"{url}/voice-prompt", params={"track": T}, headers=auth())
    assert r.status_code == 200 and r.json()["ask"] is True and r.json()["prompt"] == "Did you enjoy Track 300?"
    assert client.get(f"{url}/voice-prompt", params={"track": 999}, headers=auth()).json()["ask"] is False
    held = listeners[-1]
    r = client.get(f"/v1/programs/{PROGRAM}/listeners/{held}/voice-prompt", params={"track": T}, headers=auth())
    assert r.json()["ask"] is False and "holdout" in r.json()["reason"]
    r = client.post(f"{url}/voice-answers", json={"trackId": T, "answer": "yes", "submissionId": "voice-0001"},
                    headers=auth())
    assert r.status_code == 200 and r.json()["rating"] == "up"
    assert feedback.feedback(PROGRAM, 12, T)["channel"] == "voice-assistant"
    assert feedback.ledger_row(PROGRAM, DAY, 12, T, "email")["state"] == "cancelled"
    assert {c["channel"]: c["status"] for c in store.for_listener(PROGRAM, 12)} == {
        "email": "cancelled", "voice-assistant": "consumed"}
    r = client.post(f"/v1/programs/{PROGRAM}/listeners/13/voice-answers",
                    json={"trackId": T, "answer": "no", "submissionId": "voice-0002"}, headers=auth())
    assert r.status_code == 409 and "not prompted" in r.json()["message"]
    r = client.post(f"{url}/voice-answers", json={"trackId": T, "answer": "maybe", "submissionId": "voice-0003",
                                                  "extra": 1}, headers=auth())
    assert r.status_code == 422


def test_a_refused_form_keeps_what_was_typed_and_control_characters_are_refused(env):
    client = env[0]
    r = client.post(f"/f/{token()}", data=form(rating="down", tags=["jazz", "polka"], comment="my words"))
    assert r.status_code == 422 and "unknown tag" in r.text
    assert "my words</textarea>" in r.text and 'value="down" checked' in r.text
    r = client.post(f"/f/{token()}", data=form(comment="a\x00b"))
    assert r.status_code == 422 and "control characters" in r.text


def test_answers_unsubscribe_and_voice_through_http_on_dynamodb(tmp_path, serve, dynamodb_local_endpoint):
    """The same endpoints with the feedback store on DynamoDB (DynamoDB Local): the service does not care."""
    import uuid

    from music_feedback.feedback.dynamodb import DynamoDBFeedbackStore
    feedback = DynamoDBFeedbackStore(table_name=f"api-{uuid.uuid4().hex[:10]}", endpoint_url=dynamodb_local_endpoint)
    feedback.create_tables()
    for client, store, feedback, _ in build_env(tmp_path, serve, feedback):
        r = client.post(f"/f/{token()}", data=form(tags=["rock"]))
        assert r.status_code == 200 and "Thank you!" in r.text
        assert client.post(f"/f/{token()}", data=form(tags=["rock"])).status_code == 200  # a double click
        assert feedback.feedback(PROGRAM, L, T)["delivered_at"] == 101.0
        assert [e["kind"] for e in feedback.events(PROGRAM)] == ["feedback.submitted"]
        assert {c["channel"]: c["status"] for c in store.for_listener(PROGRAM, L)} == {
            "email": "consumed", "voice-assistant": "cancelled"}
        url = f"/v1/programs/{PROGRAM}/listeners/12"
        assert client.get(f"{url}/voice-prompt", params={"track": T}, headers=auth()).json()["ask"] is True
        r = client.post(f"{url}/voice-answers", json={"trackId": T, "answer": "no", "submissionId": "voice-0001"},
                        headers=auth())
        assert r.status_code == 200 and feedback.ledger_row(PROGRAM, DAY, 12, T, "email")["state"] == "cancelled"
        assert client.post(f"/u/{token('unsubscribe', listener=13)}",
                           data={"List-Unsubscribe": "One-Click"}).status_code == 200
        assert feedback.suppressed([13, 12]) == {13}
        assert feedback.track_metrics(PROGRAM, T) == {"thumbs_up": 1, "thumbs_down": 1, "responses": 2}
