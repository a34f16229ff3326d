"""Security and caching headers on every response, in one pure ASGI middleware.

Listener pages (the feedback form, unsubscribe, messages) get a Content-Security-Policy that allows their
own inline style (by its hash, see pages.style_hashes) and nothing else: no script, no plugin, no frame,
forms posting only back to this service, and `frame-ancestors 'none'` with `X-Frame-Options: DENY` so the
one-button unsubscribe page cannot be framed (clickjacking). `Referrer-Policy: no-referrer` keeps the
token in a page's URL from leaking to another site. Everything but the API documentation is personal or
changes by the minute, so a response without its own Cache-Control gets `no-store`.
"""
from __future__ import annotations

from starlette.datastructures import MutableHeaders

from music_feedback.service import pages

# The API documentation (FastAPI's Swagger UI and ReDoc) loads its scripts and styles from a CDN and starts
# with an inline script: a policy of its own, still never framed. It shows no listener data.
DOC_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})
DOCS_CSP = ("default-src 'none'; script-src 'unsafe-inline' https://cdn.jsdelivr.net; "
            "style-src 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
            "font-src https://fonts.gstatic.com; img-src 'self' data: https://fastapi.tiangolo.com "
            "https://cdn.redoc.ly; connect-src 'self'; worker-src blob:; base-uri 'none'; frame-ancestors 'none'")
API_CSP = "default-src 'none'; frame-ancestors 'none'"  # JSON, the pixel, redirects: nothing to run or frame
ALWAYS = (("X-Content-Type-Options", "nosniff"), ("X-Frame-Options", "DENY"), ("Referrer-Policy", "no-referrer"))


def page_csp() -> str:
    return (f"default-src 'none'; style-src {' '.join(pages.style_hashes())}; form-action 'self'; "
            "base-uri 'none'; frame-ancestors 'none'")


class SecurityHeaders:
    def __init__(self, app):
        self.app, self.page_csp = app, page_csp()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        docs = scope["path"] in DOC_PATHS

        async def add_headers(message):
            if message["type"] == "http.response.start":
                headers = MutableHeaders(raw=list(message.get("headers", ())))
                for name, value in ALWAYS:
                    headers.setdefault(name, value)
                html = headers.get("content-type", "").startswith("text/html")
                headers.setdefault("Content-Security-Policy",
                                   DOCS_CSP if docs else self.page_csp if html else API_CSP)
                if not docs:
                    headers.setdefault("Cache-Control", "no-store")
                message = {**message, "headers": headers.raw}
            await send(message)

        await self.app(scope, receive, add_headers)
