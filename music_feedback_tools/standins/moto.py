"""moto in server mode (a real HTTP endpoint speaking the AWS wire protocol) on a free loopback port."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator


@contextmanager
def running() -> Iterator[str]:
    import logging

    from moto.server import ThreadedMotoServer
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()
