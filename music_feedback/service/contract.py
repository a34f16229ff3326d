"""The OpenAPI document is the service's contract: each route declares every status it can answer and the
body it answers with. Errors are the service's own JSON shape (`ErrorBody`), FastAPI's default 422 included
(errors.py answers validation errors in that shape); the listener pages (`/f/`, `/u/`) show a link's
problems as an HTML page instead, so their statuses may carry either. 429 and 503 carry `Retry-After`.

A property test (music_feedback_tests/test_service_fuzz.py) holds the document to it: schemathesis checks
every generated request's status, content type and body against what the route declares.
"""
from __future__ import annotations

from music_feedback.service.schemas import ErrorBody

DESCRIPTIONS = {
    400: "a malformed request or link, named in `message`",
    401: "missing or invalid API key",
    403: "refused: the link was altered, is of another kind, or the listener may not answer",
    404: "unknown program (or one this API key may not read), channel or route",
    405: "method not allowed on this path",
    409: "conflict, named in `message` (e.g. a submissionId reused for another answer)",
    410: "the link has expired",
    413: "the request body is larger than the limit (16 KiB)",
    415: "the body's content type is not one this endpoint takes",
    422: "a bad parameter or field, named in `parameter`",
    429: "too many requests with this API key or link: retry after `Retry-After` seconds",
    503: "a store is busy or down: nothing was recorded; retry after `Retry-After` seconds",
}
RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before sending the request again",
                               "schema": {"type": "integer", "minimum": 1}}}
HTML = {"text/html": {"schema": {"type": "string"}}}
# What every route that reads or writes a store, and counts a key or a token, can answer.
LIMITED = (422, 429, 503)


# The HTTP server's own answer (uvicorn, before the app) to a request line past its 64 KiB: only a route with
# a parameter that long (a cursor of 16,384 characters, percent-encoded) can meet it.
REQUEST_LINE_TOO_LONG = {400: {"description": "the request line is longer than the HTTP server takes (64 KiB)",
                               "content": {"text/plain": {"schema": {"type": "string"}}}}}


def errors(*codes: int, pages: tuple[int, ...] = ()) -> dict:
    """`responses=` for a route: each of `codes` answered in the JSON error shape; each of `pages` may be
    answered by an HTML page (the listener pages) as well."""
    out: dict = {}
    for code in sorted(set(codes) | set(pages)):
        entry: dict = {"model": ErrorBody, "description": DESCRIPTIONS[code]}
        if code in pages:
            entry["content"] = dict(HTML)  # FastAPI adds the JSON shape beside it, from `model`
        if code in (429, 503):
            entry["headers"] = RETRY_AFTER
        out[code] = entry
    return out


def page(description: str) -> dict:
    """A 200 that is an HTML page."""
    return {200: {"description": description, "content": HTML}}
