"""The app factory: settings, store and programs in, a FastAPI app with every router out."""
from __future__ import annotations

import gc
import importlib
from contextlib import asynccontextmanager

from fastapi import FastAPI

from music_feedback.clock import Clock
from music_feedback.delivery.links import LinkSigner
from music_feedback.feedback.port import FeedbackStore
from music_feedback.programs.model import Program
from music_feedback.service import blocking, errors, redact
from music_feedback.service.config import ServiceConfig
from music_feedback.service.cursor import CursorSigner
from music_feedback.service.deps import ServiceState
from music_feedback.service.limits import BodyLimit
from music_feedback.service.head import HeadAsGet
from music_feedback.service.headers import SecurityHeaders
from music_feedback.service.metrics import Metrics, MetricsMiddleware
from music_feedback.service.ratelimit import RateLimiter, TokenRateLimit
from music_feedback.service.routers import ROUTERS
from music_feedback.store.base import CandidateStore
from music_feedback.warehouse.port import Warehouse
from music_feedback.programs.loader import load_programs

DESCRIPTION = """The online half of music_feedback: channels read their candidates here.

Listeners reach the feedback page (`/f/{token}`), tracking (`/o`, `/c`) and unsubscribe (`/u`) through
signed links from their messages; the voice API and candidate endpoints need `Authorization: Bearer <API key>`; each key may read a set of programs.
Errors answer JSON `{"error", "message", "parameter"}`: 401 without a valid key, 404 for an unknown program
(or one the key may not read: the same answer) or channel, 422 naming the bad parameter, 429 past a rate limit
and 503 when a store is busy (both with `Retry-After`); each operation lists every status it answers.
`HEAD` is served wherever `GET` is.
"""


@asynccontextmanager
async def _lifespan(app: FastAPI):
    """Freeze what start-up allocated (modules, routes, pydantic models): the collector then never walks
    those objects again, and a full collection no longer pauses a request for milliseconds."""
    gc.collect()
    gc.freeze()
    yield


def create_app(config: ServiceConfig | None = None, store: CandidateStore | None = None,
               programs: list[Program] | None = None, feedback: FeedbackStore | None = None,
               links: LinkSigner | None = None, clock: Clock | None = None,
               warehouse: Warehouse | None = None) -> FastAPI:
    """Called with no arguments (uvicorn's factory mode, one call per worker), everything comes from
    the environment: the configured candidate store and the enabled programs."""
    if config is None:
        config = ServiceConfig.from_env()
    if store is None:
        # lazy: resources: duckdb and the local adapters, ~0.44 s of the app's import; for create_app() alone
        from music_feedback.resources import candidate_store
        store = candidate_store()
    if programs is None:
        programs = load_programs()
    if feedback is None:
        # lazy: resources: ~0.44 s of the app's import (see above)
        from music_feedback.resources import feedback_store
        feedback = feedback_store()
    if warehouse is None:
        # lazy: resources: ~0.44 s of the app's import (see above)
        from music_feedback.resources import warehouse as configured_warehouse
        warehouse = configured_warehouse()
    if warehouse is not None:
        warehouse.hold()  # the contact policy reads it per voice prompt
    # The service's stores wait a bounded time for another process's write lock (503 past it).
    lock_wait = blocking.lock_wait_from_env()
    store, feedback = blocking.bounded(store, lock_wait), blocking.bounded(feedback, lock_wait)
    links = links or LinkSigner.from_env()
    app = FastAPI(title="music_feedback service", version="1", description=DESCRIPTION, lifespan=_lifespan)
    metrics = Metrics()
    app.state.service = ServiceState(config=config, store=store, programs={p.program_id: p for p in programs},
                                     signer=CursorSigner(config.cursor_secret), metrics=metrics,
                                     feedback=feedback, links=links, clock=clock or Clock.from_env(),
                                     warehouse=warehouse)
    errors.install(app)
    blocking.install(app, feedback, lock_wait)
    for name in ROUTERS:
        app.include_router(importlib.import_module(name).router)
    app.add_middleware(BodyLimit)  # inside the metrics: its 413s are counted
    app.state.rate_limiter = RateLimiter(config.rate_limits)
    app.add_middleware(TokenRateLimit)  # before a body is read
    app.add_middleware(SecurityHeaders)
    app.add_middleware(HeadAsGet)
    redact.install()  # no link token in a log line
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app
