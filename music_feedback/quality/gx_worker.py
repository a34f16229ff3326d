"""Great Expectations in a process of its own, for the CLI's batch runs.

GX's import and context take ~3 s of CPU and ~150 MB, and ran on a thread of the batch, competing
with the extract for the interpreter lock and adding to the batch's memory. `start()` launches this
worker before the definitions load, so it imports GX on the other core while the batch starts, and
each suite is judged there: the batch sends the few columns an expectation reads (a one-row frame
of statistics for most checks) and gets the outcomes back. Runs without a worker (the Dagster UI's
run workers, tests) judge in their own process, and so does a run whose worker has died.
"""
from __future__ import annotations

import atexit
import ctypes
import importlib
import importlib.util
import os
import pickle
import struct
import subprocess
import sys
import threading
import types
from typing import Any, BinaryIO

from music_feedback.quality import gx_runner

_HEADER = struct.Struct("!Q")
_CURRENT: "GxWorker | None" = None


def _send(stream: BinaryIO, obj: Any) -> None:
    data = pickle.dumps(obj, protocol=5)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def _recv(stream: BinaryIO) -> Any:
    head = stream.read(_HEADER.size)
    if len(head) < _HEADER.size:
        raise EOFError("the GX worker closed its pipe")
    return pickle.loads(stream.read(_HEADER.unpack(head)[0]))


def _die_with_parent() -> None:
    """Linux: SIGTERM when the batch that started it dies, even by SIGKILL."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, 15)  # PR_SET_PDEATHSIG, SIGTERM
    except OSError:
        pass


class GxWorker:
    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, "-m", "music_feedback.quality.gx_worker"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, preexec_fn=_die_with_parent)
        self.lock = threading.Lock()
        self.ready = False

    def judge(self, pdf, specs, runnable, suite_name, result_format, max_examples):
        """The outcomes, or None when the worker is gone (the caller then judges in its own process)."""
        with self.lock:
            try:
                if not self.ready:  # the worker says so once GX is imported and its context built
                    _recv(self.proc.stdout)
                    self.ready = True
                _send(self.proc.stdin, (pdf, specs, runnable, suite_name, result_format, max_examples))
                kind, value = _recv(self.proc.stdout)
            except (OSError, EOFError, pickle.UnpicklingError):
                print(f"the GX worker (pid {self.proc.pid}) has stopped; judging {suite_name} in this process",
                      file=sys.stderr)
                stop()
                return None
        if kind == "error":
            raise RuntimeError(f"Great Expectations could not judge suite {suite_name}: {value}")
        return value

    def peak_rss_mb(self) -> float | None:
        """Its peak resident memory so far (Linux), reported beside the batch's own."""
        try:
            with open(f"/proc/{self.proc.pid}/status") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        return round(int(line.split()[1]) / 1024, 1)
        except OSError:
            pass
        return None

    def close(self) -> None:
        try:
            self.proc.stdin.close()
            self.proc.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()


def start() -> None:
    """Start this process's worker (once); gx_runner then judges this process's suites there."""
    global _CURRENT
    if _CURRENT is None:
        _CURRENT = GxWorker()
        gx_runner.use_worker(_CURRENT)
        atexit.register(stop)


def current() -> GxWorker | None:
    return _CURRENT


def stop() -> None:
    global _CURRENT
    worker, _CURRENT = _CURRENT, None
    if worker is not None:
        gx_runner.use_worker(None)
        worker.close()


# Modules GX imports for expectations and renderers our suites never use (its distribution tests, its
# charts): they stand in until first used, and are ~1 s of the worker's ~3 s start, which the batch's
# first check waits for.
UNUSED_BY_OUR_SUITES = ("scipy.stats", "altair")


class _ImportedOnFirstUse(types.ModuleType):
    """Stands in for a module in sys.modules; the first attribute read imports the real module (Python's own
    LazyLoader loads on any attribute, and an import statement reads `__spec__`, so it defers nothing)."""

    def __getattr__(self, attr):
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        return getattr(importlib.import_module(self.__name__), attr)


def _defer(names) -> None:
    for name in names:
        spec = None if name in sys.modules else importlib.util.find_spec(name)
        if spec is not None:
            stand_in = _ImportedOnFirstUse(name)
            stand_in.__spec__ = spec
            sys.modules[name] = stand_in


def main() -> None:
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    sys.stdout = sys.stderr  # nothing GX prints may reach the channel
    _defer(UNUSED_BY_OUR_SUITES)
    with gx_runner._LOCK:
        gx_runner._gx_state()
    _send(out, ("ready", None))
    while True:
        try:
            args = _recv(sys.stdin.buffer)
        except EOFError:
            return
        try:
            reply = ("ok", gx_runner.judge_here(*args))
        except Exception as exc:  # sent back: the batch's check fails with GX's own message
            reply = ("error", f"{type(exc).__name__}: {exc}")
        _send(out, reply)


if __name__ == "__main__":
    main()
