"""Wall time spent waiting on each AWS service (and the warehouse), for the demo's and the bench's
"where the time goes". Counts calls made in this process; the HTTP service's own calls run elsewhere."""
from __future__ import annotations

import threading
import time
from collections import defaultdict
from contextlib import contextmanager
from typing import Iterator

from botocore.client import BaseClient

import music_feedback.warehouse.duckdb_warehouse  # noqa: F401  (each adapter class must exist to be wrapped)
import music_feedback.warehouse.redshift_warehouse  # noqa: F401
from music_feedback.warehouse.port import Warehouse


class AdapterTimes:
    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.by_step: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.step: str | None = None  # the step of the day now running: its calls are also counted under it
        self.lock = threading.Lock()

    def add(self, name: str, seconds: float) -> None:
        with self.lock:
            self.seconds[name] += seconds
            self.calls[name] += 1
            if self.step is not None:
                self.by_step[self.step][name] += seconds

    def reset(self) -> None:
        with self.lock:
            self.seconds.clear()
            self.calls.clear()
            self.by_step.clear()

    def step_summary(self) -> dict[str, dict[str, float]]:
        """Per step of the day, the seconds waited on each adapter (largest first)."""
        return {step: {k: round(v, 2) for k, v in sorted(names.items(), key=lambda kv: -kv[1])}
                for step, names in self.by_step.items()}

    def summary(self) -> dict[str, dict]:
        return {k: {"s": round(v, 2), "calls": self.calls[k]}
                for k, v in sorted(self.seconds.items(), key=lambda kv: -kv[1])}


@contextmanager
def timed_adapters() -> Iterator[AdapterTimes]:
    """Wrap botocore's one call path and the warehouse port's fetch; undone on exit. Threads overlap, so
    the figures add up to more than the wall time when calls run in parallel."""

    times = AdapterTimes()
    make_call = BaseClient._make_api_call

    def timed_call(client, operation, params):
        started = time.perf_counter()
        try:
            return make_call(client, operation, params)
        finally:
            times.add(client.meta.service_model.service_id, time.perf_counter() - started)

    BaseClient._make_api_call = timed_call
    originals = {}
    for cls in _warehouse_classes(Warehouse):
        if "fetch" in cls.__dict__:
            originals[cls] = cls.__dict__["fetch"]
            setattr(cls, "fetch", _wrap(originals[cls], times, cls.__name__))
    try:
        yield times
    finally:
        BaseClient._make_api_call = make_call
        for cls, original in originals.items():
            setattr(cls, "fetch", original)


def _warehouse_classes(base) -> list[type]:
    found, todo = [], [base]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


def _wrap(fetch, times: AdapterTimes, name: str):
    def timed(warehouse, sql):
        started = time.perf_counter()
        try:
            return fetch(warehouse, sql)
        finally:
            times.add(f"warehouse ({name})", time.perf_counter() - started)
    return timed
