"""Link-signing keys from AWS Secrets Manager, shared by every task (delivery signs, the service verifies).

The secret (MUSIC_FEEDBACK_LINK_KEYS_SECRET, default `music-feedback/link-keys`) is a JSON object of key id
-> key, as MUSIC_FEEDBACK_LINK_KEYS is. It is read again once MUSIC_FEEDBACK_LINK_KEYS_TTL_S (300) have
passed, so a rotation (add a later key id, which becomes the active one; keep the old one while its links
live) reaches running tasks within the TTL. If a re-read fails (Secrets Manager unreachable, a malformed
new version), the keys read last stay in use and the read is tried again after the TTL; the first read of
a process fails with a message naming the secret and the fix.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from typing import Callable

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from music_feedback.delivery.link_keys import parse_keys

SECRET_VAR = "MUSIC_FEEDBACK_LINK_KEYS_SECRET"
TTL_VAR = "MUSIC_FEEDBACK_LINK_KEYS_TTL_S"
DEFAULT_SECRET = "music-feedback/link-keys"
FORMAT = 'a JSON object of key id -> key, e.g. {"k1": "<at least 16 random characters>"}'
log = logging.getLogger(__name__)


class LinkKeysError(ValueError):
    """The secret is missing or malformed; the message names it and the fix."""


class SecretLinkKeys:
    """A key source for LinkSigner.from_source: (keys, active key id), cached for `ttl_s` seconds."""

    def __init__(self, secret_id: str = DEFAULT_SECRET, region_name: str | None = None,
                 endpoint_url: str | None = None, ttl_s: float = 300.0, clock: Callable[[], float] = time.monotonic):
        self.secret_id, self.region_name, self.endpoint_url = secret_id, region_name, endpoint_url
        self.ttl_s, self._clock = ttl_s, clock
        self._lock = threading.Lock()
        self._cached: tuple[dict[str, bytes], str] | None = None
        self._read_at = 0.0

    @classmethod
    def from_env(cls) -> "SecretLinkKeys":
        env = os.environ.get
        return cls(secret_id=env(SECRET_VAR) or DEFAULT_SECRET,
                   region_name=env("AWS_REGION") or env("AWS_DEFAULT_REGION") or None,
                   ttl_s=float(env(TTL_VAR) or 300))

    def fetch(self) -> tuple[dict[str, bytes], str]:
        """Read and check the secret now (the preflight, and every refresh): secretsmanager:GetSecretValue."""
        client = boto3.client("secretsmanager", region_name=self.region_name, endpoint_url=self.endpoint_url,
                              config=Config(retries={"mode": "standard", "max_attempts": 3}))
        try:
            value = client.get_secret_value(SecretId=self.secret_id)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                raise LinkKeysError(
                    f"Secrets Manager: secret {self.secret_id} does not exist ({SECRET_VAR}): create it holding "
                    f"{FORMAT} (`music-feedback aws provision` creates one with a random key)") from None
            raise
        raw = value.get("SecretString")
        if raw is None:
            raise LinkKeysError(f"Secrets Manager: secret {self.secret_id} ({SECRET_VAR}) is malformed: it holds "
                                f"binary data: store {FORMAT} as its secret string")
        try:
            return parse_keys(raw, origin=f"secret {self.secret_id}")
        except ValueError as exc:
            raise LinkKeysError(f"Secrets Manager: secret {self.secret_id} ({SECRET_VAR}) is malformed: {exc}: "
                                f"store {FORMAT}") from None

    def __call__(self) -> tuple[dict[str, bytes], str]:
        with self._lock:
            now = self._clock()
            if self._cached is None or now - self._read_at >= self.ttl_s:
                try:
                    self._cached = self.fetch()
                except Exception as exc:
                    if self._cached is None:
                        raise
                    log.warning("link keys: keeping the keys read last: re-reading %s failed: %s",
                                self.secret_id, exc)
                self._read_at = now
            return self._cached
