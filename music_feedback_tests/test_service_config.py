"""Service settings and API keys: where they come from, and the messages when they are wrong."""
from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import time

import httpx
import pytest

from music_feedback import cli
from music_feedback.service.auth import ApiKeyRing
from music_feedback.service.config import ServiceConfig

pytestmark = pytest.mark.unit

KEY = "k" * 32


def test_keys_from_env_and_file_are_kept_hashed(tmp_path, monkeypatch):
    f = tmp_path / "keys.yaml"
    f.write_text(f"- name: voice\n  sha256: {hashlib.sha256(b'voice-key-0123456789').hexdigest()}\n"
                 "  programs: [music-feedback]\n")
    monkeypatch.setenv("MUSIC_FEEDBACK_API_KEYS", json.dumps([{"name": "all", "key": KEY, "programs": ["*"]}]))
    monkeypatch.setenv("MUSIC_FEEDBACK_API_KEYS_FILE", str(f))
    ring = ServiceConfig.from_env().api_keys
    assert [k.name for k in ring.keys] == ["all", "voice"]
    assert KEY not in repr(ring) and all(len(k.sha256) == 32 for k in ring.keys)
    assert ring.authenticate(KEY).may_read("anything")
    voice = ring.authenticate("voice-key-0123456789")
    assert voice.may_read("music-feedback") and not voice.may_read("podcast")
    assert ring.authenticate("voice-key-012345678") is None and ring.authenticate("") is None


@pytest.mark.parametrize("entries, message", [
    ({"name": "x"}, "must be a list"),
    ([{"key": KEY, "programs": ["*"]}], r"\[0\]: each API key needs a non-empty 'name'"),
    ([{"name": "a", "key": KEY}], r"\(a\): 'programs' must be a non-empty list"),
    ([{"name": "a", "key": "short", "programs": ["*"]}], "at least 16 characters"),
    ([{"name": "a", "sha256": "abc", "programs": ["*"]}], "64 hex digits"),
    ([{"name": "a", "key": KEY, "programs": ["*"], "role": "admin"}], r"unknown field\(s\) \['role'\]"),
])
def test_bad_key_entries_name_the_entry_and_field(entries, message):
    with pytest.raises(ValueError, match=message):
        ApiKeyRing.parse(entries, "keys.yaml")


@pytest.mark.parametrize("var, value, message", [
    ("MUSIC_FEEDBACK_API_KEYS", "{not json", "MUSIC_FEEDBACK_API_KEYS is not valid JSON"),
    ("MUSIC_FEEDBACK_API_KEYS_FILE", "/nonexistent/keys.yaml", "no such file"),
    ("MUSIC_FEEDBACK_PAGE_SIZE", "0", "MUSIC_FEEDBACK_PAGE_SIZE must be between 1 and 10000"),
    ("MUSIC_FEEDBACK_MAX_PER_TRACK", "ten", "MUSIC_FEEDBACK_MAX_PER_TRACK must be an integer"),
    ("MUSIC_FEEDBACK_CURSOR_SECRET", "short", "at least 16 characters"),
])
def test_serve_refuses_bad_settings_with_their_name(monkeypatch, capsys, var, value, message):
    monkeypatch.setenv(var, value)
    assert cli.main(["serve", "--port", "0"]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.integration
def test_serve_command_runs_the_service(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    from music_feedback.store import SQLiteCandidateStore
    from music_feedback_tests.service_support import candidate, frame
    SQLiteCandidateStore(path=str(tmp_path / "candidates.sqlite")).put_batch(
        "music-feedback", "2026-11-23", frame([candidate(i, 10, i / 10) for i in range(1, 9)]))
    env = {**os.environ, "MUSIC_FEEDBACK_HOME": str(tmp_path), "MUSIC_FEEDBACK_PAGE_SIZE": "1",
           "MUSIC_FEEDBACK_API_KEYS": json.dumps([{"name": "a", "key": KEY, "programs": ["*"]}])}
    proc = subprocess.Popen([sys.executable, "-m", "music_feedback.cli", "serve", "--port", str(port),
                             "--workers", "2", "--log-level", "warning"], env=env)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, "serve did not start"
                time.sleep(0.2)
        assert ready.status_code == 200
        url = f"http://127.0.0.1:{port}/v1/programs/music-feedback/channels/email/candidates"
        # Pages of one row, each on a new connection, so either worker answers: they share the
        # cursor secret, or a cursor from one would be refused by the other.
        listeners, cursor = [], None
        while True:
            page = httpx.get(url, params={"cursor": cursor} if cursor else {},
                             headers={"Authorization": f"Bearer {KEY}"})
            assert page.status_code == 200, page.text
            listeners += [i["listener_id"] for i in page.json()["items"]]
            cursor = page.json()["nextCursor"]
            if cursor is None:
                break
        assert listeners == [8, 7, 6, 5, 4, 3, 2, 1]
        assert httpx.get(url).status_code == 401
    finally:
        proc.terminate()
        proc.wait(30)
