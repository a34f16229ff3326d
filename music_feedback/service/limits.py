"""The request body limit, enforced while the body is read, for every route and body shape.

A pure ASGI middleware: a `Content-Length` over the limit is answered 413 before a byte of the body is
read; a body without one (chunked transfer) is read up to the limit and answered 413 the moment it passes
it. Either way the server holds at most the limit (and uvicorn's read buffer) of any request, and the
connection is closed rather than drained. A body within the limit is handed to the app whole, so JSON,
form and multipart parsing downstream never see more than the limit.
"""
from __future__ import annotations

import json

from music_feedback.service.errors import body as error_body

MAX_BODY_BYTES = 16_384  # every body the service takes (a feedback form or answer) is far smaller


def _too_large(limit: int) -> tuple[dict, dict]:
    content = json.dumps(error_body(413, f"the request body is larger than {limit} bytes", parameter="body"),
                         separators=(",", ":")).encode()
    start = {"type": "http.response.start", "status": 413,  # the rest of the body is never read: close
             "headers": [(b"content-type", b"application/json"),
                         (b"content-length", str(len(content)).encode()), (b"connection", b"close")]}
    return start, {"type": "http.response.body", "body": content, "more_body": False}


class BodyLimit:
    def __init__(self, app, max_bytes: int = MAX_BODY_BYTES):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length, chunked = None, False
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = value
            elif name == b"transfer-encoding":
                chunked = True
        if length is not None:
            try:
                declared = int(length)
            except ValueError:  # the HTTP server refuses such a request before it gets here
                declared = self.max_bytes + 1
            if declared > self.max_bytes:
                return await self._reject(send)
            if declared == 0 and not chunked:
                return await self.app(scope, receive, send)
        elif not chunked:  # no body
            return await self.app(scope, receive, send)
        parts, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: let the app see it
                return await self.app(scope, _replay([message], receive), send)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                return await self._reject(send)
            parts.append(chunk)
            if not message.get("more_body", False):
                break
        whole = {"type": "http.request", "body": b"".join(parts), "more_body": False}
        return await self.app(scope, _replay([whole], receive), send)

    async def _reject(self, send) -> None:
        start, content = _too_large(self.max_bytes)
        await send(start)
        await send(content)


def _replay(messages: list[dict], receive):
    """A receive that hands out `messages` first, then waits on the server's (for the disconnect)."""
    pending = list(messages)

    async def replayed():
        if pending:
            return pending.pop(0)
        return await receive()
    return replayed
