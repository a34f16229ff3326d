"""Request-rate limits per API key and per link token, answered 429 with Retry-After.

The counting is a maintained library's, throttled-py: GCRA (the generic cell rate algorithm: a quota of
N per period lets a burst of N through, then one every period/N) on its in-memory store, an LRU of at most
MAX_KEYS keys that expire lazily, with no background work. (`limits`, slowapi's engine, was measured first:
its memory storage sweeps every key from a thread every 10 ms, and with one key per link that sweep halved
the feedback API's throughput at the bench's load.) One limiter per app, so per worker process: with N
workers a client may reach N times a limit. A token is counted only once its signature verified, so forged
tokens, which cost one HMAC to refuse, never fill the store; its key is the token's MAC, unique and short.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass

from starlette.responses import JSONResponse
from throttled import RateLimiterType, Throttled
from throttled.exceptions import DataError
from throttled.rate_limiter import Quota, quota_parser
from throttled.store import MemoryStore

from music_feedback.delivery.links import TokenError
from music_feedback.service import errors
from music_feedback.service.errors import ApiError

PER_KEY_VAR = "MUSIC_FEEDBACK_RATE_LIMIT_PER_KEY"
PER_TOKEN_VAR = "MUSIC_FEEDBACK_RATE_LIMIT_PER_TOKEN"
# Generous: a channel reads its 100 pages in seconds and a voice front answers for many listeners under one
# key; a listener opens, clicks and answers a message a handful of times (mail scanners add a few fetches).
DEFAULT_PER_KEY = "1000/second"
DEFAULT_PER_TOKEN = "60/minute"
OFF = ("off", "none", "unlimited")
MAX_KEYS = 50_000  # the store's LRU bound: ~10 MB; a key evicted while idle only starts its count again
TOKEN_PATH = re.compile(r"/([fuoc])/([^/]+)")
PURPOSES = {"f": "feedback", "u": "unsubscribe", "o": "open", "c": "click"}


def parse(name: str, text: str) -> tuple[Quota, ...]:
    """`20/second;600/minute` (each optionally `burst N`) -> its quotas; `off` -> none. ValueError naming the
    variable otherwise."""
    text = text.strip()
    if text.lower() in OFF:
        return ()
    try:
        return tuple(quota_parser.parse(text))
    except DataError as exc:
        raise ValueError(f"{name}={text!r} is not a rate limit: write e.g. '600/minute' or '20/second;600/minute' "
                         f"(amount per second, minute, hour or day), or 'off' ({exc})") from None


@dataclass(frozen=True)
class RateLimits:
    """The settings, as written."""
    per_key: str = DEFAULT_PER_KEY
    per_token: str = DEFAULT_PER_TOKEN

    def __post_init__(self) -> None:
        parse(PER_KEY_VAR, self.per_key)
        parse(PER_TOKEN_VAR, self.per_token)

    @classmethod
    def from_env(cls) -> "RateLimits":
        return cls(per_key=os.environ.get(PER_KEY_VAR) or DEFAULT_PER_KEY,
                   per_token=os.environ.get(PER_TOKEN_VAR) or DEFAULT_PER_TOKEN)


class RateLimiter:
    def __init__(self, settings: RateLimits):
        store = MemoryStore(options={"MAX_SIZE": MAX_KEYS})

        def limiters(name: str, text: str) -> tuple[tuple[Throttled, Quota], ...]:
            """One limiter per quota of the setting, each under keys of its own in the shared store."""
            return tuple((Throttled(using=RateLimiterType.GCRA.value, quota=quota, store=store,
                                    key_prefix=f"{name.lower()}-{i}"), quota)
                         for i, quota in enumerate(parse(name, text)))

        self._per_key = limiters(PER_KEY_VAR, settings.per_key)
        self._per_token = limiters(PER_TOKEN_VAR, settings.per_token)

    def api_key(self, name: str) -> None:
        """Count a request of the API key `name`; 429 past its limit."""
        self._hit(self._per_key, name, "this API key", "authorization")

    def token(self, token: str) -> None:
        """Count a request with a verified link token; 429 past its limit."""
        self._hit(self._per_token, token.rpartition(".")[2], "this link", "token")

    @staticmethod
    def _hit(limiters: tuple[tuple[Throttled, Quota], ...], identity: str, what: str, parameter: str) -> None:
        for limiter, quota in limiters:
            result = limiter.limit(identity)
            if result.limited:
                wait = max(1, math.ceil(result.state.retry_after))
                rate = quota.rate
                raise ApiError(429, f"too many requests with {what}: at most {rate.limit} per "
                                    f"{_period(rate.period.total_seconds())}; retry in {wait} s", parameter,
                               headers={"Retry-After": str(wait)})


def _period(seconds: float) -> str:
    for unit, size in (("week", 604_800), ("day", 86_400), ("hour", 3_600), ("minute", 60), ("second", 1)):
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return unit if count == 1 else f"{count} {unit}s"
    return f"{seconds:g} seconds"


def limiter(app) -> RateLimiter:
    return app.state.rate_limiter


class TokenRateLimit:
    """A pure ASGI middleware counting each request to /f/, /u/, /o/ and /c/ against its link token before the
    route runs (and before a body is read). A token that does not verify is left to the route to refuse;
    POST /v1/feedback, whose token is in the body, counts in its handler."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        found = TOKEN_PATH.fullmatch(scope["path"]) if scope["type"] == "http" else None
        if found:
            kind, token = found.groups()
            if kind == "o":
                token = token[:-4] if token.endswith(".gif") else ""
            st = scope["app"].state.service
            try:
                st.links.verify(token, PURPOSES[kind], now=st.clock.now())
                limiter(scope["app"]).token(token)
            except TokenError:
                pass  # the route answers it, in its own words
            except ApiError as exc:
                return await self._refuse(exc, scope, receive, send)
        await self.app(scope, receive, send)

    @staticmethod
    async def _refuse(exc: ApiError, scope, receive, send) -> None:
        response = JSONResponse(errors.body(exc.status, exc.message, parameter=exc.parameter),
                                status_code=exc.status, headers=exc.headers)
        await response(scope, receive, send)
