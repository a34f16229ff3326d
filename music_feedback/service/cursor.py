"""Opaque, signed page cursors: a client can neither forge one nor replay it against another query.

A cursor is base64url(zlib(json payload)) + "." + base64url(HMAC-SHA256), the payload naming a
fingerprint of the query it belongs to.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import zlib


class CursorError(ValueError):
    """The cursor is malformed, forged, or belongs to another query."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def fingerprint(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, separators=(",", ":")).encode()).hexdigest()[:24]


class CursorSigner:
    MAX_LENGTH = 16_384

    def __init__(self, secret: bytes):
        self._secret = secret

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._secret, body, hashlib.sha256).digest()

    def dumps(self, query: str, state: dict) -> str:
        body = zlib.compress(json.dumps({"q": query, **state}, separators=(",", ":")).encode())
        return f"{_b64(body)}.{_b64(self._mac(body))}"

    def loads(self, query: str, cursor: str) -> dict:
        if len(cursor) > self.MAX_LENGTH or cursor.count(".") != 1:
            raise CursorError("cursor is malformed: pass back the nextCursor of the previous page unchanged")
        body_text, mac_text = cursor.split(".")
        try:
            body, mac = _unb64(body_text), _unb64(mac_text)
        except (ValueError, TypeError):
            raise CursorError("cursor is malformed: pass back the nextCursor of the previous page unchanged") from None
        if not hmac.compare_digest(mac, self._mac(body)):
            raise CursorError("cursor signature is invalid: it was altered or not issued by this service")
        state = json.loads(zlib.decompress(body))
        if state.pop("q", None) != query:
            raise CursorError("cursor belongs to another query: repeat the parameters of the first page with it")
        return state
