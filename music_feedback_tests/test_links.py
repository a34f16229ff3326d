"""Signed links: purpose-bound, expiring, rotating keys, and key files shared by delivery and the service."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest

from music_feedback.delivery.links import LinkSigner, TokenError

pytestmark = pytest.mark.unit

OLD, NEW = b"old-secret-0123456789abcdef", b"new-secret-0123456789abcdef"


def test_round_trip_and_purpose():
    signer = LinkSigner({"k1": OLD}, "k1")
    token = signer.sign("feedback", "music-feedback", 7, 9, "2026-11-23", "email", int(time.time()) + 60)
    claims = signer.verify(token, "feedback")
    assert (claims.listener_id, claims.track_id, claims.batch_date, claims.channel) == (7, 9, "2026-11-23", "email")
    with pytest.raises(TokenError, match="not a unsubscribe link") as err:
        signer.verify(token, "unsubscribe")
    assert err.value.status == 403


def test_rotation_keeps_old_links_valid_while_the_old_key_is_configured():
    old = LinkSigner({"k1": OLD}, "k1")
    token = old.sign("open", "p", 1, 2, "2026-11-23", "email", int(time.time()) + 60)
    rotated = LinkSigner({"k1": OLD, "k2": NEW}, "k2")
    assert rotated.verify(token, "open").listener_id == 1
    assert rotated.sign("open", "p", 1, 2, "2026-11-23", "email", 1).startswith("k2.")
    with pytest.raises(TokenError, match="signature is invalid"):
        LinkSigner({"k2": NEW}, "k2").verify(token, "open")  # the old key retired: its links stop working


def test_expired_forged_and_malformed():
    signer = LinkSigner({"k1": OLD}, "k1")
    expired = signer.sign("feedback", "p", 1, 2, "d", "email", int(time.time()) - 1)
    with pytest.raises(TokenError, match="expired") as err:
        signer.verify(expired, "feedback")
    assert err.value.status == 410
    kid, body, mac = signer.sign("feedback", "p", 1, 2, "d", "email", int(time.time()) + 60).split(".")
    other = LinkSigner({"k1": OLD}, "k1").sign("feedback", "p", 2, 2, "d", "email", int(time.time()) + 60)
    with pytest.raises(TokenError, match="signature"):
        signer.verify(f"{kid}.{other.split('.')[1]}.{mac}", "feedback")  # another listener's claims, this mac
    for bad in ("", "a.b", "x" * 2000, "k1.!!.??"):
        with pytest.raises(TokenError):
            signer.verify(bad, "feedback")


def test_configuration(monkeypatch, tmp_path):
    with pytest.raises(ValueError, match="at least 16"):
        LinkSigner({"k1": b"short"}, "k1")
    with pytest.raises(ValueError, match="MUSIC_FEEDBACK_LINK_KEY_ID"):
        LinkSigner({"k1": OLD}, "k9")
    monkeypatch.setenv("MUSIC_FEEDBACK_LINK_KEYS", "not json")
    with pytest.raises(ValueError, match="MUSIC_FEEDBACK_LINK_KEYS must be a JSON object"):
        LinkSigner.from_env(tmp_path)
    monkeypatch.setenv("MUSIC_FEEDBACK_LINK_KEYS", json.dumps({"a1": OLD.decode(), "b2": NEW.decode()}))
    monkeypatch.setenv("MUSIC_FEEDBACK_LINK_KEY_ID", "a1")
    assert LinkSigner.from_env(tmp_path).active == "a1"
    monkeypatch.delenv("MUSIC_FEEDBACK_LINK_KEYS")
    monkeypatch.delenv("MUSIC_FEEDBACK_LINK_KEY_ID")
    first, second = LinkSigner.from_env(tmp_path), LinkSigner.from_env(tmp_path)
    token = first.sign("feedback", "p", 1, 2, "d", "email", int(time.time()) + 60)
    assert second.verify(token, "feedback").listener_id == 1  # one key file, made once, for every process
    assert (tmp_path / "link_keys.json").stat().st_mode & 0o077 == 0


def _signed(payload: object, kid: str = "k1", secret: bytes = OLD) -> str:
    """A token over any payload, with a valid MAC: what sign() never writes."""
    body = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    mac = hmac.new(secret, f"{kid}.{body}".encode(), hashlib.sha256).digest()
    return f"{kid}.{body}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


@pytest.mark.parametrize("field, value", [
    (0, "x"), (0, 1), (1, 7), (1, ""), (2, "7"), (2, True), (2, 7.0), (2, -1), (3, None), (3, 2**64), (4, 20261123),
    (5, ["email"]), (6, str(int(time.time()) + 60)), (6, float(int(time.time()) + 60)), (6, False),
])
def test_every_signed_claim_must_have_the_type_sign_writes(field, value):
    """A payload that verifies but carries another type (a string expiry made the service answer 500) is
    malformed: 400, never an exception deeper down."""
    signer = LinkSigner({"k1": OLD}, "k1")
    claims = ["f", "music-feedback", 7, 9, "2026-11-23", "email", int(time.time()) + 60]
    assert signer.verify(_signed(claims), "feedback").expires_at == claims[6]  # the helper signs as sign() does
    claims[field] = value
    with pytest.raises(TokenError, match="malformed") as err:
        signer.verify(_signed(claims), "feedback")
    assert err.value.status == 400


@pytest.mark.parametrize("payload", [{"p": "f"}, ["f", "p", 1, 2, "d", "email"], "f", None, [[]] * 7])
def test_a_signed_payload_of_another_shape_is_malformed(payload):
    with pytest.raises(TokenError, match="malformed"):
        LinkSigner({"k1": OLD}, "k1").verify(_signed(payload), "feedback")


@pytest.mark.parametrize("url, ok", [
    ("https://feedback.example.com", True), ("https://feedback.example.com/base/", True),
    ("http://127.0.0.1:8080", True), ("http://localhost:8080", True), ("http://[::1]:8080", True),
    ("http://feedback.example.com", False), ("http://10.0.0.5:8080", False), ("http://127.0.0.1.nip.io", False),
    ("ftp://feedback.example.com", False), ("feedback.example.com", False), ("https://", False),
])
def test_the_public_url_is_https_outside_loopback(monkeypatch, url, ok):
    from music_feedback.delivery.settings import public_url
    monkeypatch.setenv("MUSIC_FEEDBACK_PUBLIC_URL", url)
    if ok:
        assert public_url() == url.rstrip("/")
    else:
        with pytest.raises(ValueError, match="MUSIC_FEEDBACK_PUBLIC_URL=.*https://"):
            public_url()


def test_the_unsubscribe_link_outlives_the_feedback_link():
    from music_feedback.delivery.email.render import Renderer
    from music_feedback.programs.loader import load_programs
    program = load_programs()[0]
    assert (program.feedback.link_ttl_days, program.feedback.unsubscribe_ttl_days) == (14, 365)
    signer = LinkSigner({"k1": OLD}, "k1")
    renderer = Renderer(program, signer, "https://feedback.test", "l-{listener_id}@x.test")
    sent = int(time.time())
    row = {"listener_id": 7, "track_id": 9}
    for links in (renderer.links(row, "2026-11-23", "email", sent + 14 * 86_400, sent + 365 * 86_400),
                  renderer.links(row, "2026-11-23", "email", sent + 14 * 86_400)):  # derived from the same send
        expiry = {name: signer.verify(url.split("/")[4].split("?")[0].removesuffix(".gif"), purpose).expires_at
                  for name, purpose in (("feedback_url", "feedback"), ("click_url", "click"), ("open_url", "open"),
                                        ("unsubscribe_url", "unsubscribe"))
                  for url in [links[name]]}
        assert expiry["feedback_url"] == expiry["click_url"] == expiry["open_url"] == sent + 14 * 86_400
        assert expiry["unsubscribe_url"] == sent + 365 * 86_400
    with pytest.raises(TokenError, match="expired"):
        signer.verify(links["feedback_url"].split("/")[4], "feedback", now=sent + 200 * 86_400)
    assert signer.verify(links["unsubscribe_url"].split("/")[4], "unsubscribe", now=sent + 200 * 86_400)


@pytest.mark.parametrize("days, ok", [(365, True), (30, True), (3650, True), (29, False), (0, False), (3651, False)])
def test_an_unsubscribe_link_lives_at_least_30_days(days, ok):
    from pydantic import ValidationError

    from music_feedback.programs.model import FeedbackSettings
    if ok:
        assert FeedbackSettings(unsubscribeTTLDays=days).unsubscribe_ttl_days == days
    else:
        with pytest.raises(ValidationError, match="unsubscribeTTLDays|less than or equal"):
            FeedbackSettings(unsubscribeTTLDays=days)


def test_a_program_file_with_a_short_unsubscribe_link_is_refused_naming_the_setting(tmp_path):
    import yaml

    from music_feedback.programs.loader import BUILTIN_DIR, ProgramConfigError, load_program
    source = yaml.safe_load(next(BUILTIN_DIR.glob("*.yaml")).read_text())
    source.setdefault("feedback", {})["unsubscribeTTLDays"] = 10
    path = tmp_path / "short.yaml"
    path.write_text(yaml.safe_dump(source))
    with pytest.raises(ProgramConfigError, match=r"feedback\.unsubscribeTTLDays.*at least 30 days"):
        load_program(path)
