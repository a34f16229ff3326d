"""Signed, expiring links: feedback, open pixel, click and unsubscribe.

A token is `kid.payload.mac`: base64url JSON naming its purpose, program, listener, track, batch day,
channel and expiry, and an HMAC-SHA256 by the key `kid`. Keys rotate by adding a new kid and making it
active; tokens signed by an older kid verify while that key stays configured. Keys come from
MUSIC_FEEDBACK_LINK_KEYS (delivery/link_keys.py), or on AWS from a Secrets Manager secret (delivery/link_secret.py), or on the
embedded default from a key file made once in the data home.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from music_feedback.delivery.link_keys import ACTIVE_VAR, KEYS_VAR, check_keys, parse_keys
from music_feedback.settings import data_home, get_env

PURPOSES = {"feedback": "f", "open": "o", "click": "c", "unsubscribe": "u"}
_NAMES = {v: k for k, v in PURPOSES.items()}


class TokenError(ValueError):
    """A token that is malformed (400), forged or used for another purpose (403), or expired (410)."""

    def __init__(self, message: str, status: int = 403):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class LinkClaims:
    purpose: str
    program_id: str
    listener_id: int
    track_id: int
    batch_date: str
    channel: str
    expires_at: int


def _is_int(value: object, low: int, high: int) -> bool:
    return type(value) is int and low <= value <= high  # not bool, not float: exactly what sign() writes


def _claims(payload: object) -> list:
    """The signed payload, each field of the type sign() writes, or TypeError: a payload signed by a key
    we hold but not by sign() (another tool, an older format) must be refused, not fail deeper down."""
    if not (isinstance(payload, list) and len(payload) == 7):
        raise TypeError("the payload is not a list of 7 claims")
    code, program_id, listener_id, track_id, batch_date, channel, expires_at = payload
    if not (isinstance(code, str) and code in _NAMES and isinstance(program_id, str) and 0 < len(program_id) <= 128
            and _is_int(listener_id, 0, 2**63 - 1) and _is_int(track_id, 0, 2**63 - 1)
            and isinstance(batch_date, str) and 0 < len(batch_date) <= 32
            and isinstance(channel, str) and 0 < len(channel) <= 64 and _is_int(expires_at, 0, 2**63 - 1)):
        raise TypeError("a claim has the wrong type")
    return payload


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class LinkSigner:
    """Signs with the active key, verifies with any configured one. Keys are fixed, or come from a `source`
    (a callable giving the checked keys and the active id, e.g. a secret it caches for a short time), asked
    on every use so that a rotated secret is picked up by a running service."""
    MAX_LENGTH = 1024

    def __init__(self, keys: dict[str, bytes], active: str,
                 source: Callable[[], tuple[dict[str, bytes], str]] | None = None):
        check_keys(keys, active)
        self._fixed, self._source = (dict(keys), active), source

    @classmethod
    def from_source(cls, source: Callable[[], tuple[dict[str, bytes], str]]) -> "LinkSigner":
        keys, active = source()
        return cls(keys, active, source)

    def _ring(self) -> tuple[dict[str, bytes], str]:
        return self._source() if self._source else self._fixed

    @property
    def active(self) -> str:
        return self._ring()[1]

    def sign(self, purpose: str, program_id: str, listener_id: int, track_id: int, batch_date: str,
             channel: str, expires_at: int) -> str:
        claims = [PURPOSES[purpose], program_id, int(listener_id), int(track_id), batch_date, channel,
                  int(expires_at)]
        body = _b64(json.dumps(claims, separators=(",", ":")).encode())
        keys, active = self._ring()
        signed = f"{active}.{body}"
        return f"{signed}.{_b64(hmac.new(keys[active], signed.encode(), hashlib.sha256).digest())}"

    def verify(self, token: str, purpose: str, now: float | None = None) -> LinkClaims:
        parts = token.split(".") if len(token) <= self.MAX_LENGTH else []
        if len(parts) != 3:
            raise TokenError("the link is malformed: open the link from the message again", 400)
        kid, body, mac = parts
        key = self._ring()[0].get(kid)
        try:
            given = _unb64(mac)
        except ValueError:
            given = b""
        expected = hmac.new(key or b"unknown", f"{kid}.{body}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(given, expected) or key is None:
            raise TokenError("the link's signature is invalid: it was altered or not issued by this service")
        try:
            claims = _claims(json.loads(_unb64(body)))
        except (ValueError, TypeError):
            raise TokenError("the link is malformed: open the link from the message again", 400) from None
        code, program_id, listener_id, track_id, batch_date, channel, expires_at = claims
        if _NAMES.get(code) != purpose:
            raise TokenError(f"this is a {_NAMES.get(code, 'unknown')} link, not a {purpose} link")
        if expires_at <= (time.time() if now is None else now):
            raise TokenError("the link has expired", 410)
        return LinkClaims(purpose, program_id, listener_id, track_id, batch_date, channel, expires_at)

    @classmethod
    def from_env(cls, home: Path | None = None) -> "LinkSigner":
        """Keys from MUSIC_FEEDBACK_LINK_KEYS; else on AWS from the Secrets Manager secret every task shares
        (MUSIC_FEEDBACK_LINK_KEYS_SECRET, re-read after a short TTL so a rotation is picked up); else, on the
        embedded default, a key file made once in the data home (mode 600), so delivery and the service sign
        and verify with the same key."""
        raw = os.environ.get(KEYS_VAR)
        if raw:
            return cls(*parse_keys(raw))
        if get_env() == "aws":
            # lazy: the secret's reader imports boto3 (~0.26 s); only the AWS set reads it
            from music_feedback.delivery.link_secret import SecretLinkKeys
            return cls.from_source(SecretLinkKeys.from_env())
        if home is None:
            home = data_home()
        path = home / "link_keys.json"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".link_keys.{os.getpid()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump({"k1": secrets.token_urlsafe(32)}, f)
            try:
                os.link(tmp, path)  # atomic, and fails if another process made it first: theirs wins
            except FileExistsError:
                pass
            finally:
                tmp.unlink()
        keys = json.loads(path.read_text())
        return cls({k: v.encode() for k, v in keys.items()}, os.environ.get(ACTIVE_VAR) or sorted(keys)[-1])
