"""One clock for every time the product writes or compares.

The wall clock shifted by a fixed offset: zero in production, the distance to a simulated instant when a
simulated day runs. An offset, not a start instant, so every worker process of the service agrees to the
microsecond. Code that stamps or compares times takes a `Clock`; nothing else reads `time.time()`.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import date, datetime, timezone

OFFSET_ENV = "MUSIC_FEEDBACK_CLOCK_OFFSET_S"


@dataclass(frozen=True)
class Clock:
    offset_s: float = 0.0

    def now(self) -> float:
        """Epoch seconds."""
        return time.time() + self.offset_s

    def __call__(self) -> float:
        return self.now()

    def datetime(self) -> datetime:
        return datetime.fromtimestamp(self.now(), timezone.utc)

    def today(self) -> date:
        """Today in UTC."""
        return self.datetime().date()

    @classmethod
    def at(cls, instant: float | datetime) -> "Clock":
        """A clock that reads `instant` now and runs on from there at real speed."""
        epoch = instant.timestamp() if isinstance(instant, datetime) else float(instant)
        return cls(epoch - time.time())

    @classmethod
    def from_env(cls) -> "Clock":
        """The process's clock: MUSIC_FEEDBACK_CLOCK_OFFSET_S seconds from the wall clock (default 0)."""
        raw = os.environ.get(OFFSET_ENV, "").strip()
        if not raw:
            return SYSTEM
        try:
            return cls(float(raw))
        except ValueError:
            raise ValueError(f"{OFFSET_ENV} must be a number of seconds, got {raw!r}") from None

    def env(self) -> dict[str, str]:
        """The variables that give a child process this clock."""
        return {OFFSET_ENV: repr(self.offset_s)}


SYSTEM = Clock()
