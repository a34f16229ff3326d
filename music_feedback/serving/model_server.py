"""The inference app a SageMaker endpoint runs: GET /ping and POST /invocations on one loaded model.

The model is loaded when the app is built, so /ping answers 200 only for a server that can score; a
missing or corrupt artifact stops `music-feedback model serve` with a message naming the model.
"""
from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from music_feedback.scoring.artifacts import load_model
from music_feedback.scoring.wire import JSON, BadRequest, predict_body

DEFAULT_MODEL_DIR = "/opt/ml/model"
DEFAULT_PORT = 8080


def model_dir_from_env() -> Path:
    return Path(os.environ.get("SM_MODEL_DIR", DEFAULT_MODEL_DIR))


def port_from_env() -> int:
    return int(os.environ.get("SAGEMAKER_BIND_TO_PORT", DEFAULT_PORT))


def create_app(model_dir: Path) -> FastAPI:
    model = load_model(Path(model_dir))
    app = FastAPI(title=f"model server: {model.model_id}", docs_url=None, redoc_url=None)
    app.state.model = model

    @app.get("/ping")
    def ping():
        return {"status": "ok", "model_id": model.model_id, "model_version": model.version}

    @app.post("/invocations")
    async def invocations(request: Request):
        body = await request.body()
        try:
            out = await run_in_threadpool(predict_body, model, body, request.headers.get("content-type", ""))
        except BadRequest as exc:
            status = 415 if "content type" in str(exc) else 400
            return JSONResponse({"error": str(exc)}, status_code=status)
        return Response(out, media_type=JSON)

    return app
