"""`music-feedback serve`: uvicorn running the app factory, with one or more workers."""
from __future__ import annotations

import os
import secrets

import uvicorn

from music_feedback.service import config as cfg
from music_feedback.service.blocking import lock_wait_from_env


def serve(host: str | None, port: int | None, workers: int | None, log_level: str = "info") -> None:
    # Settings travel to the workers through the environment; they must share the cursor secret.
    for var, value in ((cfg.HOST_VAR, host), (cfg.PORT_VAR, port), (cfg.WORKERS_VAR, workers)):
        if value is not None:
            os.environ[var] = str(value)
    os.environ.setdefault(cfg.CURSOR_SECRET_VAR, secrets.token_urlsafe(32))
    conf = cfg.ServiceConfig.from_env()  # fail here, with the variable's name, not in a worker
    lock_wait_from_env()
    if not conf.api_keys.keys:
        print("warning: no API key configured (MUSIC_FEEDBACK_API_KEYS or MUSIC_FEEDBACK_API_KEYS_FILE): "
              "every candidate request will get 401")
    uvicorn.run("music_feedback.service.app:create_app", factory=True, host=conf.host, port=conf.port,
                workers=conf.workers, log_level=log_level, access_log=False)
