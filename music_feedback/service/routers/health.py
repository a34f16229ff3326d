"""Open endpoints: liveness, readiness (the store answers) and Prometheus metrics."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from music_feedback.service.deps import state

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is up")
async def healthz() -> dict:
    return {"status": "ok"}


@router.get("/readyz", summary="The configured candidate store answers",
            responses={503: {"description": "the store does not answer"}})
async def readyz(request: Request) -> JSONResponse:
    store = state(request).store
    try:
        await run_in_threadpool(store.ping)
    except Exception as exc:  # any failure of the backend means not ready, with the reason
        return JSONResponse(status_code=503, content={"status": "unavailable", "store": type(store).__name__,
                                                      "error": f"{type(exc).__name__}: {exc}"[:500]})
    return JSONResponse({"status": "ready", "store": type(store).__name__})


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    return state(request).metrics.render(request)
