"""Signed links: purpose-bound, expiring, rotating keys, and key files shared by delivery and the service."""
from __future__ import annotations

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
