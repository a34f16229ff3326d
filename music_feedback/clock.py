"""One clock for every time the product writes or compares.

The wall clock shifted by a fixed offset: zero in production, the distance to a simulated instant when a
simulated day runs. An offset, not a start instant, so every worker process of the service agrees to the
microsecond. Code that stamps or compares times takes a `Clock`; nothing else reads `time.time()`.
A stopped clock reads one instant: a simulated listeners' session then decides everything at the same
simulated time however fast the machine and the adapters are, so two adapter sets give the same day.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import date, datetime, timezone

OFFSET_ENV = "MUSIC_FEEDBACK_CLOCK_OFFSET_S"
STOPPED_ENV = "MUSIC_FEEDBACK_CLOCK_STOPPED_AT"


@dataclass(frozen=True)
class Clock:
    offset_s: float = 0.0
    stopped_at: float | None = None  # epoch seconds this clock always reads, if stopped

    def now(self) -> float:
        """Epoch seconds."""
        return self.stopped_at if self.stopped_at is not None else time.time() + self.offset_s

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
    def stopped(cls, instant: float | datetime) -> "Clock":
        """A clock that always reads `instant`."""
        return cls(stopped_at=instant.timestamp() if isinstance(instant, datetime) else float(instant))

    @classmethod
    def from_env(cls) -> "Clock":
        """The process's clock: MUSIC_FEEDBACK_CLOCK_OFFSET_S seconds from the wall clock (default 0), or
        stopped at MUSIC_FEEDBACK_CLOCK_STOPPED_AT epoch seconds."""
        values = {}
        for var in (OFFSET_ENV, STOPPED_ENV):
            raw = os.environ.get(var, "").strip()
            if raw:
                try:
                    values[var] = float(raw)
                except ValueError:
                    raise ValueError(f"{var} must be a number of seconds, got {raw!r}") from None
        if not values:
            return SYSTEM
        return cls(values.get(OFFSET_ENV, 0.0), values.get(STOPPED_ENV))

    def env(self) -> dict[str, str]:
        """The variables that give a child process this clock."""
        return {OFFSET_ENV: repr(self.offset_s),
                **({STOPPED_ENV: repr(self.stopped_at)} if self.stopped_at is not None else {})}


SYSTEM = Clock()
