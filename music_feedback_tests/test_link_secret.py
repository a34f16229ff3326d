"""Link keys on AWS: every task signs and verifies with the keys of one Secrets Manager secret (moto's
server), a rotation reaches a running signer after the TTL, and a missing or malformed secret is named."""
from __future__ import annotations

import json
import time
import uuid

import boto3
import pytest

from music_feedback.delivery.link_secret import LinkKeysError, SecretLinkKeys
from music_feedback.delivery.links import LinkSigner, TokenError

pytestmark = pytest.mark.integration

K1, K2 = "first-key-0123456789abcdef", "second-key-0123456789abcdef"


@pytest.fixture
def secret(moto_endpoint, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    name = f"music-feedback/link-keys-{uuid.uuid4().hex[:8]}"
    client = boto3.client("secretsmanager", region_name="us-east-1")
    client.create_secret(Name=name, SecretString=json.dumps({"k1": K1}))
    return name, client


def test_every_task_on_aws_signs_with_the_shared_secret(secret, monkeypatch, tmp_path):
    name, _ = secret
    monkeypatch.setenv("MUSIC_FEEDBACK_ENV", "aws")
    monkeypatch.setenv("MUSIC_FEEDBACK_LINK_KEYS_SECRET", name)
    monkeypatch.delenv("MUSIC_FEEDBACK_LINK_KEYS", raising=False)
    sender, service = LinkSigner.from_env(tmp_path / "task-a"), LinkSigner.from_env(tmp_path / "task-b")
    token = sender.sign("feedback", "p", 1, 2, "2026-11-23", "email", int(time.time()) + 60)
    assert token.startswith("k1.") and service.verify(token, "feedback").listener_id == 1
    assert not (tmp_path / "task-a" / "link_keys.json").exists()  # no task makes a key of its own


def test_a_rotation_is_picked_up_after_the_ttl(secret):
    name, client = secret
    now = [0.0]
    signer = LinkSigner.from_source(SecretLinkKeys(name, "us-east-1", ttl_s=300, clock=lambda: now[0]))
    old = signer.sign("open", "p", 1, 2, "d", "email", int(time.time()) + 60)
    client.put_secret_value(SecretId=name, SecretString=json.dumps({"k1": K1, "k2": K2}))
    now[0] = 299.0
    assert signer.active == "k1"  # cached
    now[0] = 300.0
    assert signer.active == "k2" and signer.sign("open", "p", 1, 2, "d", "email", 1).startswith("k2.")
    assert signer.verify(old, "open").listener_id == 1  # the old key still configured: its links verify
    client.put_secret_value(SecretId=name, SecretString=json.dumps({"k2": K2}))
    now[0] = 600.0
    with pytest.raises(TokenError, match="signature is invalid"):
        signer.verify(old, "open")  # retired


def test_a_failed_refresh_keeps_the_keys_read_last(secret):
    name, client = secret
    now = [0.0]
    signer = LinkSigner.from_source(SecretLinkKeys(name, "us-east-1", ttl_s=10, clock=lambda: now[0]))
    client.put_secret_value(SecretId=name, SecretString="not json")
    now[0] = 20.0
    assert signer.active == "k1"


def test_a_missing_or_malformed_secret_names_it_and_the_fix(secret):
    name, client = secret
    with pytest.raises(LinkKeysError, match=r"secret no-such-secret does not exist \(MUSIC_FEEDBACK_LINK_KEYS_SECRET\)"
                       r".*music-feedback aws provision"):
        LinkSigner.from_source(SecretLinkKeys("no-such-secret", "us-east-1"))
    client.put_secret_value(SecretId=name, SecretString=json.dumps({"k1": "short"}))
    with pytest.raises(LinkKeysError, match=f"secret {name} .* is malformed: .*at least 16"):
        SecretLinkKeys(name, "us-east-1").fetch()
    client.put_secret_value(SecretId=name, SecretBinary=b"\x00\x01")
    with pytest.raises(LinkKeysError, match="binary"):
        SecretLinkKeys(name, "us-east-1").fetch()
