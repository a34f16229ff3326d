"""The service in a child process on a free loopback port (`music-feedback serve`), for the listener
simulator and the benches: a separate process, so clients in this one do not share its GIL."""
from __future__ import annotations

import ctypes
import os
import secrets
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from typing import Iterator

import httpx

from music_feedback.clock import Clock


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    """Linux: the service gets SIGTERM when the process that started it dies, even by SIGKILL."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, 15)  # PR_SET_PDEATHSIG, SIGTERM
    except OSError:
        pass


@contextmanager
def service(workers: int = 1, timeout: float = 60, clock: Clock | None = None) -> Iterator[tuple[str, dict]]:
    """Yields (base URL, headers with a fresh API key allowed every program); stopped on exit. `clock`: the
    service's clock (a simulated day's), else this process's."""
    port, key = free_port(), secrets.token_urlsafe(32)
    env = {**os.environ, "MUSIC_FEEDBACK_API_KEYS": f'[{{"name": "local", "key": "{key}", "programs": ["*"]}}]',
           **(clock or Clock.from_env()).env()}
    proc = subprocess.Popen([sys.executable, "-m", "music_feedback.cli", "serve", "--port", str(port), "--workers",
                             str(workers), "--log-level", "warning"], env=env, preexec_fn=_die_with_parent)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the service did not start on {url} (exit code {proc.poll()})")
            time.sleep(0.2)
        yield url, {"Authorization": f"Bearer {key}"}
    finally:
        proc.terminate()
        proc.wait(30)
