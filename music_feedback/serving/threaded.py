"""Serve an ASGI app with uvicorn in a thread on a loopback port the OS picks (tests and the bench)."""
from __future__ import annotations

import socket
import threading
import time
from contextlib import ExitStack, contextmanager
from typing import Iterator

import uvicorn

from music_feedback.serving.front import MAX_BODY_BYTES, create_front
from music_feedback.serving.model_server import create_app


@contextmanager
def serving(app, timeout: float = 10.0) -> Iterator[str]:
    """Yields the base URL; the server is stopped when the block ends."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()


@contextmanager
def sagemaker_stack(models: dict, max_body_bytes: int | None = None) -> Iterator[str]:
    """One model server per endpoint (name -> model directory) behind one local SageMaker front.

    Yields the front's URL, to give boto3 as endpoint_url."""

    with ExitStack() as stack:
        routes = {name: stack.enter_context(serving(create_app(d))) for name, d in models.items()}
        yield stack.enter_context(serving(create_front(routes, max_body_bytes or MAX_BODY_BYTES)))
