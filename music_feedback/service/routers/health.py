"""Open endpoints: liveness, readiness (the store answers) and Prometheus metrics."""
from __future__ import annotations

import logging
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from music_feedback.service.deps import state

router = APIRouter(tags=["health"])
log = logging.getLogger(__name__)


class Readiness(BaseModel):
    status: Literal["ready", "unavailable"]


@router.get("/healthz", summary="The process is up")
async def healthz() -> dict:
    return {"status": "ok"}


@router.get("/readyz", summary="The configured candidate store answers", response_model=Readiness,
            responses={503: {"model": Readiness, "description": "the store does not answer"}})
async def readyz(request: Request) -> JSONResponse:
    """Open to anyone, so it names no internals: the reason goes to the log, not the answer."""
    store = state(request).store
    try:
        await run_in_threadpool(store.ping)
    except Exception as exc:  # any failure of the backend means not ready
        log.warning("not ready: the candidate store (%s) does not answer: %s: %s", type(store).__name__,
                    type(exc).__name__, exc)
        return JSONResponse(status_code=503, content={"status": "unavailable"}, headers={"Retry-After": "5"})
    return JSONResponse({"status": "ready"})


@router.get("/metrics", summary="Prometheus metrics", response_class=Response,
            responses={200: {"description": "the Prometheus text format", "content": {"text/plain": {}}}})
async def metrics(request: Request) -> Response:
    return state(request).metrics.render(request)
