"""Service settings, read once from the environment (a secrets file for API keys)."""
from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field

from music_feedback.service.auth import ApiKeyRing
from music_feedback.service.ratelimit import RateLimits

HOST_VAR = "MUSIC_FEEDBACK_SERVICE_HOST"
PORT_VAR = "MUSIC_FEEDBACK_SERVICE_PORT"
WORKERS_VAR = "MUSIC_FEEDBACK_SERVICE_WORKERS"
PAGE_SIZE_VAR = "MUSIC_FEEDBACK_PAGE_SIZE"
MAX_PER_TRACK_VAR = "MUSIC_FEEDBACK_MAX_PER_TRACK"
CURSOR_SECRET_VAR = "MUSIC_FEEDBACK_CURSOR_SECRET"
MAX_LIMIT = 100_000


class ServiceConfigError(ValueError):
    """A setting the operator must fix; the message names it."""


def _int(name: str, default: int, low: int, high: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ServiceConfigError(f"{name} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise ServiceConfigError(f"{name} must be between {low} and {high}, got {value}")
    return value


@dataclass(frozen=True)
class ServiceConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    page_size: int = 1_000  # rows per page of a channel query
    max_per_track: int = 10_000  # the seed's per-track cap for channel queries
    # Signs cursors; workers of one service must share it (`serve` sets one for them if unset).
    cursor_secret: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)
    api_keys: ApiKeyRing = field(default_factory=ApiKeyRing)
    rate_limits: RateLimits = field(default_factory=RateLimits)  # per API key and per link token

    @classmethod
    def from_env(cls) -> "ServiceConfig":
        secret = os.environ.get(CURSOR_SECRET_VAR)
        if secret is not None and len(secret) < 16:
            raise ServiceConfigError(f"{CURSOR_SECRET_VAR} must be at least 16 characters")
        return cls(
            host=os.environ.get(HOST_VAR, "127.0.0.1"),
            port=_int(PORT_VAR, 8080, 0, 65535),
            workers=_int(WORKERS_VAR, 1, 1, 64),
            page_size=_int(PAGE_SIZE_VAR, 1_000, 1, 10_000),
            max_per_track=_int(MAX_PER_TRACK_VAR, 10_000, 1, MAX_LIMIT),
            cursor_secret=secret.encode() if secret else secrets.token_bytes(32),
            api_keys=ApiKeyRing.from_env(),
            rate_limits=_rate_limits(),
        )


def _rate_limits() -> RateLimits:
    try:
        return RateLimits.from_env()
    except ValueError as exc:
        raise ServiceConfigError(str(exc)) from None
