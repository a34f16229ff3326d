"""Every error answers JSON naming what to fix: {"error": code, "message": text, ...}."""
from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)
_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
          409: "conflict", 413: "too_large", 415: "unsupported_media_type", 422: "invalid_parameter",
          429: "too_many_requests", 503: "unavailable"}


class ApiError(Exception):
    """An error a client caused (or, for 503, a dependency that is down), with the parameter at fault."""

    def __init__(self, status: int, message: str, parameter: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.parameter, self.headers = status, message, parameter, headers


def body(status: int, message: str, **extra) -> dict:
    return {"error": _CODES.get(status, "error"), "message": message, **{k: v for k, v in extra.items() if v}}


def _param(loc: tuple) -> str:
    """('query', 'minScore') -> 'minScore'; ('body', 'a', 0) -> 'a[0]'."""
    parts = [p for p in loc if p not in ("query", "path", "header", "body", "cookie")]
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "request"


async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    params = []
    for e in errors:
        name = _param(tuple(e.get("loc", ())))
        if name not in params:
            params.append(name)
    message = "; ".join(f"{_param(tuple(e.get('loc', ())))}: {e.get('msg', 'invalid')}" for e in errors[:5])
    detail = [{"parameter": _param(tuple(e.get("loc", ()))), "message": e.get("msg")} for e in errors]
    return JSONResponse(status_code=422, content=body(422, message or "invalid request",
                                                      parameter=params[0] if params else None, detail=detail))


async def _api(request: Request, exc: ApiError) -> JSONResponse:
    return JSONResponse(status_code=exc.status, content=body(exc.status, exc.message, parameter=exc.parameter),
                        headers=exc.headers)


async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    if exc.status_code == 404 and message == "Not Found":
        message = f"no such route: {request.method} {request.url.path}"
    return JSONResponse(status_code=exc.status_code, content=body(exc.status_code, message),
                        headers=getattr(exc, "headers", None))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse(status_code=500, content=body(500, "internal error; it has been logged"))


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(ApiError, _api)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)
