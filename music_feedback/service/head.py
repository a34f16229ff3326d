"""HEAD wherever GET is (RFC 9110 §9.3.2): a pure ASGI middleware runs the GET route and sends its status
and headers (Content-Length included) without the body.

A HEAD records nothing: `request.state.head` is true, and the tracking routes, whose GET records an open or
a click, skip the event (link checkers and mail scanners probe links with HEAD). The OpenAPI document lists
the GET operations only; their HEAD is implied.
"""
from __future__ import annotations

from starlette.requests import Request


def is_head(request: Request) -> bool:
    return bool(getattr(request.state, "head", False))


class HeadAsGet:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "HEAD":
            return await self.app(scope, receive, send)
        scope = {**scope, "method": "GET", "state": {**scope.get("state", {}), "head": True}}

        async def without_body(message):
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app(scope, receive, without_body)
