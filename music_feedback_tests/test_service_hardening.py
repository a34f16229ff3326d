"""The listener-facing service against hostile use (issue 25's minor items): security headers on every
page, HEAD wherever GET is, no caching of personal data, a readiness probe without internals, one 404 for
programs a key may not read, rate limits per API key and per link token, strict token payloads, submission
ids scoped to their listener, no token in any log line, and an unsubscribe link that lives a year."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import time

import httpx
import pytest

from music_feedback.clock import Clock
from music_feedback.feedback.sqlite_store import SQLiteFeedbackStore
from music_feedback.programs.loader import load_programs
from music_feedback.service.config import ServiceConfig
from music_feedback.service.ratelimit import RateLimits
from music_feedback.service.redact import RedactTokens, redact
from music_feedback_tests.service_support import (ALL_KEY, LINKS, OTHER_KEY, PROGRAM, auth, candidate, frame,
                                                  make_app, sqlite_store)
from music_feedback_tests.test_feedback_api import DAY, L, T, _ledger, build_env, form, token

pytestmark = pytest.mark.integration
SECRET = b"test-link-secret-0123456789"  # LINKS' key t1


@pytest.fixture
def env(tmp_path, serve):
    yield from build_env(tmp_path, serve, SQLiteFeedbackStore(path=str(tmp_path / "feedback.sqlite")))


def served(tmp_path, serve, **kw) -> tuple[httpx.Client, SQLiteFeedbackStore]:
    """An app over the small store, with `kw` for make_app (rate limits, a clock)."""
    store = sqlite_store(tmp_path)
    store.put_batch(PROGRAM, DAY, frame([candidate(lid, T, 0.9) for lid in (L, 12, 13)]))
    feedback = SQLiteFeedbackStore(path=str(tmp_path / "feedback.sqlite"))
    feedback.plan(PROGRAM, _ledger([(lid, T, "email") for lid in (L, 12, 13)]))
    app = make_app(store, feedback=feedback, **kw)
    return httpx.Client(base_url=serve(app), timeout=10), feedback


def limited(per_key: str = "off", per_token: str = "off") -> RateLimits:
    return RateLimits(per_key=per_key, per_token=per_token)


def signed(payload: list) -> str:
    """A token over any payload, signed with the service's key: what sign() would never write."""
    body = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    mac = hmac.new(SECRET, f"t1.{body}".encode(), hashlib.sha256).digest()
    return f"t1.{body}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


# --- security headers -----------------------------------------------------------------------------------------

def test_every_page_carries_the_security_headers_and_its_csp_allows_only_its_own_style(env):
    client = env[0]
    pages = [client.get(f"/f/{token()}"), client.get(f"/u/{token('unsubscribe')}"),
             client.get("/f/not-a-token-at-all"),  # an error page
             client.post(f"/f/{token()}", data=form(rating="meh")),  # the form again, naming the problem
             client.post(f"/f/{token()}", data=form())]  # thank you
    for page in pages:
        assert page.headers["content-type"].startswith("text/html"), page.status_code
        csp = page.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp and "script-src" not in csp
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["referrer-policy"] == "no-referrer"
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["cache-control"] == "no-store"
        # The page runs no script and has no style attribute; each inline <style> is allowed by its hash.
        assert "<script" not in page.text and " style=" not in page.text
        for css in re.findall(r"<style>(.*?)</style>", page.text, re.S):
            digest = base64.b64encode(hashlib.sha256(css.encode()).digest()).decode()
            assert f"'sha256-{digest}'" in csp
    api = client.get("/healthz")
    assert api.headers["x-content-type-options"] == "nosniff" and "frame-ancestors 'none'" in api.headers[
        "content-security-policy"]


def test_personal_data_is_never_cached(env):
    client = env[0]
    answers = [client.get(f"/v1/programs/{PROGRAM}/channels/email/candidates", headers=auth()),
               client.get(f"/v1/programs/{PROGRAM}/listeners/{L}/candidates", headers=auth()),
               client.get(f"/v1/programs/{PROGRAM}/tracks/{T}/candidates", params={"date": DAY}, headers=auth()),
               client.get(f"/v1/programs/{PROGRAM}/listeners/12/voice-prompt", params={"track": T}, headers=auth()),
               client.get(f"/f/{token()}"),
               client.post("/v1/feedback", json={"token": token(), "rating": "up", "submissionId": "sub-00000001"})]
    for r in answers:
        assert r.status_code == 200 and r.headers["cache-control"] == "no-store", r.request.url


# --- HEAD ---------------------------------------------------------------------------------------------------------

def test_head_is_served_wherever_get_is_and_records_nothing(env):
    client, _, feedback, _ = env
    target = f"/f/{token()}"
    for path, params in ((target, {}), (f"/u/{token('unsubscribe')}", {}), (f"/o/{token('open')}.gif", {}),
                         (f"/c/{token('click')}", {"to": target}), ("/healthz", {}), ("/readyz", {}),
                         (f"/v1/programs/{PROGRAM}/listeners/{L}/candidates", {})):
        get = client.get(path, params=params, headers=auth(), follow_redirects=False)
        head = client.head(path, params=params, headers=auth(), follow_redirects=False)
        assert head.status_code == get.status_code and get.status_code in (200, 303), (path, head.status_code)
        assert head.content == b"" and head.headers.get("content-type") == get.headers.get("content-type")
        assert head.headers["content-length"] == get.headers["content-length"]
    assert len(feedback.events(PROGRAM, "open")) == 1 and len(feedback.events(PROGRAM, "click")) == 1  # the GETs'
    assert client.head(f"/c/{token('click')}", params={"to": "https://evil.example/"}).status_code == 400
    assert client.head("/f/not-a-token-at-all").status_code == 400


# --- readiness ------------------------------------------------------------------------------------------------

def test_readyz_names_no_internals_and_logs_the_reason(tmp_path, serve, caplog):
    class Down(type(sqlite_store(tmp_path))):
        def ping(self) -> None:
            raise RuntimeError("disk I/O error at /secret/path/candidates.sqlite")

    down = Down(path=str(tmp_path / "down.sqlite"))
    with caplog.at_level(logging.WARNING, logger="music_feedback.service"):
        r = httpx.get(f"{serve(make_app(down))}/readyz", timeout=10)
    assert r.status_code == 503 and r.json() == {"status": "unavailable"} and r.headers["retry-after"]
    assert "/secret/path" in caplog.text  # the reason is in the log, not in the answer


# --- per-key visibility -----------------------------------------------------------------------------------

def test_a_key_learns_nothing_of_programs_it_may_not_read(env):
    client = env[0]
    mine = client.get(f"/v1/programs/{PROGRAM}/channels/email/candidates", headers=auth(OTHER_KEY))
    unknown = client.get("/v1/programs/no-such-program/channels/email/candidates", headers=auth(OTHER_KEY))
    assert mine.status_code == unknown.status_code == 404
    assert mine.json()["message"].replace(PROGRAM, "X") == unknown.json()["message"].replace("no-such-program", "X")
    for r in (mine, unknown, client.get("/v1/programs/nope/listeners/1/candidates", headers=auth(ALL_KEY))):
        assert "podcast" not in r.text and "known:" not in r.text  # no list of the programs there are
        assert r.text.count(PROGRAM) <= (r is mine)  # only the name the caller sent
    voice = client.get(f"/v1/programs/{PROGRAM}/listeners/12/voice-prompt", params={"track": T},
                       headers=auth(OTHER_KEY))
    assert voice.status_code == 404


# --- rate limits ----------------------------------------------------------------------------------------------

def test_a_link_token_is_rate_limited_with_retry_after(tmp_path, serve):
    client, feedback = served(tmp_path, serve, rate_limits=limited(per_token="3/minute"))
    page = f"/f/{token()}"
    assert [client.get(page).status_code for _ in range(3)] == [200, 200, 200]
    r = client.get(page)
    assert r.status_code == 429 and r.json()["error"] == "too_many_requests" and r.json()["parameter"] == "token"
    assert 1 <= int(r.headers["retry-after"]) <= 60 and "3 per minute" in r.json()["message"]
    assert client.post(page, data=form()).status_code == 429 and feedback.feedback(PROGRAM, L, T) is None
    # The body's token counts too; another listener's link has its own count; forged tokens are not counted.
    other = token(listener=12)
    bodies = [client.post("/v1/feedback", json={"token": other, "rating": "up", "submissionId": f"sub-0000000{i}"})
              for i in range(4)]
    assert [b.status_code for b in bodies] == [200, 200, 200, 429] and bodies[3].headers["retry-after"]
    forged = page[:-3] + ("AAA" if not page.endswith("AAA") else "BBB")
    assert {client.get(forged).status_code for _ in range(5)} == {403}
    assert client.get(f"/u/{token('unsubscribe', listener=13)}").status_code == 200


def test_an_api_key_is_rate_limited_with_retry_after(tmp_path, serve):
    client, _ = served(tmp_path, serve, rate_limits=limited(per_key="2/minute"))
    url = f"/v1/programs/{PROGRAM}/listeners/{L}/candidates"
    assert [client.get(url, headers=auth()).status_code for _ in range(2)] == [200, 200]
    r = client.get(url, headers=auth())
    assert r.status_code == 429 and r.json()["parameter"] == "authorization" and int(r.headers["retry-after"]) >= 1
    assert client.get(url, headers=auth(OTHER_KEY)).status_code == 404  # another key: its own count
    assert client.get(url).status_code == 401  # no key is refused as before, never counted


def test_rate_limit_settings_are_checked_and_named(monkeypatch):
    from music_feedback.service.config import ServiceConfigError
    monkeypatch.setenv("MUSIC_FEEDBACK_RATE_LIMIT_PER_TOKEN", "lots")
    with pytest.raises(ServiceConfigError, match="MUSIC_FEEDBACK_RATE_LIMIT_PER_TOKEN='lots' is not a rate limit"):
        ServiceConfig.from_env()
    monkeypatch.setenv("MUSIC_FEEDBACK_RATE_LIMIT_PER_TOKEN", "10/second;100/hour")
    monkeypatch.setenv("MUSIC_FEEDBACK_RATE_LIMIT_PER_KEY", "off")
    limits = ServiceConfig.from_env().rate_limits
    assert (limits.per_token, limits.per_key) == ("10/second;100/hour", "off")
    monkeypatch.delenv("MUSIC_FEEDBACK_RATE_LIMIT_PER_TOKEN")
    monkeypatch.delenv("MUSIC_FEEDBACK_RATE_LIMIT_PER_KEY")
    assert ServiceConfig.from_env().rate_limits == RateLimits()


# --- token payloads -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("payload", [
    ["f", PROGRAM, L, T, DAY, "email", str(int(time.time()) + 3600)],  # a string expiry: a 500 before
    ["f", PROGRAM, str(L), T, DAY, "email", int(time.time()) + 3600],
    ["f", PROGRAM, L, T + 0.5, DAY, "email", int(time.time()) + 3600],
    ["f", PROGRAM, True, T, DAY, "email", int(time.time()) + 3600],
    ["f", PROGRAM, L, T, 20261123, "email", int(time.time()) + 3600],
    ["f", None, L, T, DAY, "email", int(time.time()) + 3600],
    ["f", PROGRAM, L, T, DAY, ["email"], int(time.time()) + 3600],
    ["f", PROGRAM, L, T, DAY, "email"],
    {"purpose": "f"},
])
def test_a_signed_payload_of_the_wrong_types_is_a_400(env, payload):
    client, _, feedback, _ = env
    bad = signed(payload)
    for r in (client.get(f"/f/{bad}"), client.post(f"/f/{bad}", data=form()),
              client.post("/v1/feedback", json={"token": bad, "rating": "up", "submissionId": "sub-00000001"})):
        assert r.status_code == 400 and "malformed" in r.text, (r.status_code, r.text[:200])
    assert client.get(f"/o/{signed(['o', *payload[1:]] if isinstance(payload, list) else payload)}.gif"
                      ).status_code == 400
    assert feedback.feedback(PROGRAM, L, T) is None


# --- submission ids -------------------------------------------------------------------------------------------

def test_submission_ids_are_scoped_to_their_listener(env):
    client, _, feedback, _ = env
    same = "shared-id-0001"
    a = client.post("/v1/feedback", json={"token": token(), "rating": "up", "submissionId": same})
    b = client.post("/v1/feedback", json={"token": token(listener=12), "rating": "down", "submissionId": same})
    assert (a.status_code, b.status_code) == (200, 200) and b.json()["outcome"] == "created"
    assert feedback.feedback(PROGRAM, 12, T)["rating"] == -1
    again = client.post("/v1/feedback", json={"token": token(listener=12), "rating": "up", "submissionId": same})
    assert again.status_code == 409  # still one id per answer, for one listener


def test_a_submission_id_with_a_trailing_newline_is_refused(env):
    client, _, feedback, _ = env
    for r in (client.post(f"/f/{token()}", data=form(sid="submission-1\n")),
              client.post("/v1/feedback", json={"token": token(), "rating": "up", "submissionId": "submission-1\n"}),
              client.post(f"/v1/programs/{PROGRAM}/listeners/12/voice-answers", headers=auth(),
                          json={"trackId": T, "answer": "yes", "submissionId": "submission-1\n"})):
        assert r.status_code == 422 and "submissionId" in r.text, (r.status_code, r.text[:200])
    assert feedback.feedback(PROGRAM, L, T) is None and feedback.feedback(PROGRAM, 12, T) is None


# --- logs ---------------------------------------------------------------------------------------------------------

def test_a_server_error_logs_no_token(tmp_path, serve, caplog):
    class Broken(SQLiteFeedbackStore):
        def ledger_row(self, *args, **kwargs):
            raise RuntimeError(f"broken while reading /f/{secret_token}")

    secret_token = token()
    store = sqlite_store(tmp_path)
    app = make_app(store, feedback=Broken(path=str(tmp_path / "feedback.sqlite")))
    with caplog.at_level(logging.ERROR):
        r = httpx.get(f"{serve(app)}/f/{secret_token}", timeout=10)
    assert r.status_code == 500
    assert "unhandled error on GET /f/<token>" in caplog.text and "broken while reading /f/<token>" in caplog.text
    assert secret_token not in caplog.text and secret_token.split(".")[2] not in caplog.text


@pytest.mark.unit
def test_the_access_log_and_tracebacks_are_redacted():
    from uvicorn.logging import AccessFormatter
    tok = token()
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5000", "GET", f"/c/{tok}?to=%2Ff%2F{tok}", "1.1", 303), None)
    assert RedactTokens().filter(record)
    line = AccessFormatter('%(client_addr)s - "%(request_line)s" %(status_code)s', use_colors=False).format(record)
    assert line == '127.0.0.1:5000 - "GET /c/<token>?to=%2Ff%2F<token> HTTP/1.1" 303 See Other' and tok not in line
    try:
        raise ValueError(f"bad /u/{tok}")
    except ValueError:
        import sys
        failed = logging.LogRecord("x", logging.ERROR, __file__, 1, "on %s", (f"/o/{tok}.gif",), sys.exc_info())
    RedactTokens().filter(failed)
    assert tok not in logging.Formatter().format(failed) and "bad /u/<token>" in failed.exc_text
    assert redact("/v1/programs/p/listeners/1/candidates") == "/v1/programs/p/listeners/1/candidates"


# --- unsubscribe lives a year ---------------------------------------------------------------------------------

def test_an_unsubscribe_link_works_long_after_the_feedback_link_expired(tmp_path, serve):
    from music_feedback.delivery.email.render import Renderer
    program = load_programs()[0]
    sent_at = int(time.time())
    links = Renderer(program, LINKS, "https://feedback.test", "l-{listener_id}@x.test").links(
        {"listener_id": L, "track_id": T}, DAY, "email", sent_at + 14 * 86_400, sent_at + 365 * 86_400)
    later = Clock.at(sent_at + 200 * 86_400)  # 200 days on: the feedback link is long expired
    client, feedback = served(tmp_path, serve, clock=later)
    assert client.get(links["feedback_url"].replace("https://feedback.test", "")).status_code == 410
    unsubscribe = links["unsubscribe_url"].replace("https://feedback.test", "")
    assert client.get(unsubscribe).status_code == 200
    assert client.post(unsubscribe, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    assert feedback.suppressed([L]) == {L}
