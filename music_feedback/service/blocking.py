"""Store calls off the event loop, each waiting a bounded time for a lock.

The loop only parses, verifies and answers; every feedback-store call runs on a thread of one of two
lanes, each a limiter sized to the store: writes (SQLite takes one writer at a time, so one thread per
process; a networked store gets more) and reads (SQLite in WAL mode reads beside a writer). A call waits at
most `lock_wait_s` for its lane, and the stores wait at most as long for another process's write lock (their
busy timeout is the service's bound, not the batch's 30 s). Past the bound the answer is 503 with
`Retry-After`, mapped here in one place from SQLite's "database is locked" and DynamoDB's throttling, so a
health check never waits on a database and a request never waits 30 s to fail with a 500.
"""
from __future__ import annotations

import asyncio
import functools
import logging
import math
import os
import sqlite3
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

import anyio
import anyio.to_thread
from botocore.exceptions import ClientError
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from music_feedback.service import errors
from music_feedback.service.config import ServiceConfigError

LOCK_WAIT_VAR = "MUSIC_FEEDBACK_SERVICE_LOCK_WAIT_S"
DEFAULT_LOCK_WAIT_S = 5.0
# SQLite's words for a lock another connection holds; DynamoDB's for a table or item over its capacity.
LOCKED = ("database is locked", "database table is locked", "database is busy")
THROTTLED = frozenset({"ProvisionedThroughputExceededException", "ThrottlingException",
                       "RequestLimitExceeded", "TransactionConflictException",
                       "TransactionInProgressException"})
log = logging.getLogger(__name__)
T = TypeVar("T")


class StoreBusy(Exception):
    """A store call did not get its lane or its lock within the bound; answered 503 with Retry-After."""


def lock_wait_from_env() -> float:
    raw = os.environ.get(LOCK_WAIT_VAR, "").strip()
    if not raw:
        return DEFAULT_LOCK_WAIT_S
    try:
        value = float(raw)
    except ValueError:
        raise ServiceConfigError(f"{LOCK_WAIT_VAR} must be a number of seconds, got {raw!r}") from None
    if not 0.05 <= value <= 60:
        raise ServiceConfigError(f"{LOCK_WAIT_VAR} must be between 0.05 and 60 seconds, got {value}")
    return value


def is_busy(exc: BaseException) -> bool:
    """A lock or throttle that clears by itself (retry later), as opposed to a broken store."""
    if isinstance(exc, StoreBusy):
        return True
    if isinstance(exc, sqlite3.OperationalError):
        return any(word in str(exc).lower() for word in LOCKED)
    code = getattr(exc, "response", None)
    if isinstance(code, dict):  # botocore's ClientError
        return code.get("Error", {}).get("Code") in THROTTLED
    return False


def bounded(store: T, lock_wait_s: float) -> T:
    """`store` with its write-lock wait set to the service's bound (an embedded SQLite store has a
    `lock_wait_s`); a store without one is returned as it is (DynamoDB: botocore's retries bound it)."""
    if "lock_wait_s" in getattr(type(store), "model_fields", {}) and store.lock_wait_s != lock_wait_s:
        return store.model_copy(update={"lock_wait_s": lock_wait_s})
    return store


def _lanes_for(feedback) -> tuple[int, int]:
    """(write threads, read threads): one writer for a file store that takes one writer at a time (more
    would only queue on its lock, sleeping in SQLite's busy handler); a networked store gets more."""
    if "lock_wait_s" in getattr(type(feedback), "model_fields", {}):
        return 1, 8
    return 16, 32


@dataclass
class StoreCalls:
    """The two lanes of one app. Limiters are made per event loop (tests serve one app from several)."""

    lock_wait_s: float = DEFAULT_LOCK_WAIT_S
    write_threads: int = 1
    read_threads: int = 8
    _loops: "weakref.WeakKeyDictionary" = field(default_factory=weakref.WeakKeyDictionary, repr=False)

    @classmethod
    def for_store(cls, feedback, lock_wait_s: float) -> "StoreCalls":
        writers, readers = _lanes_for(feedback)
        return cls(lock_wait_s=lock_wait_s, write_threads=writers, read_threads=readers)

    @property
    def retry_after(self) -> str:
        return str(max(1, math.ceil(self.lock_wait_s)))

    def _limiters(self, lane: str):
        loop = asyncio.get_running_loop()
        found = self._loops.get(loop)
        if found is None:
            found = {name: (anyio.CapacityLimiter(n), anyio.CapacityLimiter(n))  # (the gate, run_sync's)
                     for name, n in (("write", self.write_threads), ("read", self.read_threads))}
            self._loops[loop] = found
        return found[lane]

    async def run(self, lane: str, fn: Callable[..., Any], *args, **kwargs) -> Any:
        """fn(*args, **kwargs) on a thread of `lane` ("write" or "read"). Waiting for the lane is bounded and
        cancellable (the call has not started); once started the call runs to its end, so an answer is
        never dropped after the store has committed it."""
        gate, threads = self._limiters(lane)
        borrower = object()
        try:
            gate.acquire_on_behalf_of_nowait(borrower)  # the usual case, without a timer (~0.15 ms less)
        except anyio.WouldBlock:
            try:
                with anyio.fail_after(self.lock_wait_s):
                    await gate.acquire_on_behalf_of(borrower)
            except TimeoutError:
                raise StoreBusy(f"the store's {lane} lane stayed busy for {self.lock_wait_s:g} s") from None
        try:
            return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs), limiter=threads)
        finally:
            gate.release_on_behalf_of(borrower)


def calls(request: Request) -> StoreCalls:
    return request.app.state.store_calls


async def write(request: Request, fn: Callable[..., T], *args, **kwargs) -> T:
    """A store call that writes (or reads and writes), off the loop on the write lane."""
    return await calls(request).run("write", fn, *args, **kwargs)


async def read(request: Request, fn: Callable[..., T], *args, **kwargs) -> T:
    """A store call that only reads, off the loop on the read lane."""
    return await calls(request).run("read", fn, *args, **kwargs)


async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
    if not is_busy(exc):
        raise exc  # not a lock: the catch-all handler logs it and answers 500
    # The route's template, never the raw path: link tokens stay out of the log.
    route = getattr(request.scope.get("route"), "path", "unmatched")
    log.warning("store busy on %s %s: %s", request.method, route, exc)
    lanes = calls(request)
    message = (f"the store is busy (a write lock held longer than {lanes.lock_wait_s:g} s); the request "
               "was not recorded: send it again after Retry-After seconds")
    return JSONResponse(status_code=503, content=errors.body(503, message),
                        headers={"Retry-After": lanes.retry_after})


def install(app: FastAPI, feedback, lock_wait_s: float) -> None:
    """The app's lanes and the one mapping of a busy store to 503 (plain-def routes that call a store
    directly, like the voice API, reach it too)."""
    app.state.store_calls = StoreCalls.for_store(feedback, lock_wait_s)
    app.add_exception_handler(StoreBusy, _unavailable)
    app.add_exception_handler(sqlite3.OperationalError, _unavailable)
    app.add_exception_handler(ClientError, _unavailable)
