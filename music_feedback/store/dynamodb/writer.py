"""BatchWriteItem in requests of 25, re-sending UnprocessedItems with exponential backoff and full
jitter (boto3's batch_writer re-sends at once, which keeps a throttled table throttled), over
several writer threads."""
from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from typing import Callable, Iterable, Iterator

from botocore.exceptions import ClientError

BATCH = 25


class StoreWriteError(RuntimeError):
    """Writes the table kept refusing; the batch step fails and a re-run completes the day."""


@dataclass
class WriteStats:
    """Where a put_batch spent its time: reading the old day, building items (encode_s, inside
    write_s), sending them."""
    requests: int = 0
    retries: int = 0
    sleep_s: float = 0.0
    items: int = 0
    read_old_s: float = 0.0
    encode_s: float = 0.0
    write_s: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def count(self, requests: int = 0, retries: int = 0, sleep_s: float = 0.0) -> None:
        with self._lock:  # writer threads share one
            self.requests += requests
            self.retries += retries
            self.sleep_s += sleep_s


@dataclass(frozen=True)
class Backoff:
    max_retries: int = 8
    base_s: float = 0.05
    cap_s: float = 5.0
    sleep: Callable[[float], None] = time.sleep

    def delay(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2^attempt)]."""
        return random.uniform(0.0, min(self.cap_s, self.base_s * (2 ** attempt)))


def write_chunk(client, table: str, requests: list[dict], backoff: Backoff, stats: WriteStats) -> None:
    pending, attempt = requests, 0
    while pending:
        stats.count(requests=1)
        try:
            resp = client.batch_write_item(RequestItems={table: pending})
        except ClientError as exc:  # botocore's own retries are spent too (throttling, 5xx)
            code = exc.response.get("Error", {}).get("Code", "")
            raise StoreWriteError(f"DynamoDB table {table!r} refused a write ({code}: {exc}); the day is "
                                  f"incomplete: fix the cause, then re-run the day (re-storing is idempotent)") from exc
        pending = resp.get("UnprocessedItems", {}).get(table, [])
        if not pending:
            return
        if attempt >= backoff.max_retries:
            raise StoreWriteError(
                f"DynamoDB table {table!r} left {len(pending)} item(s) unprocessed after {backoff.max_retries} "
                f"retries (throttled): the day is incomplete; raise the table's capacity or retry later, then "
                f"re-run the day (re-storing a day is idempotent)")
        wait = backoff.delay(attempt)
        stats.count(retries=1, sleep_s=wait)
        backoff.sleep(wait)
        attempt += 1


def _chunks(requests: Iterable[dict], stats: WriteStats) -> Iterator[list[dict]]:
    """Chunks of 25, built as the writers ask for them (a day's requests at once would take GBs)."""
    it = iter(requests)
    while True:
        started = time.perf_counter()
        chunk = list(islice(it, BATCH))
        stats.encode_s += time.perf_counter() - started
        if not chunk:
            return
        stats.items += len(chunk)
        yield chunk


def write_all(client, table: str, requests: Iterable[dict], writers: int, backoff: Backoff) -> WriteStats:
    """Send `requests` (PutRequest/DeleteRequest dicts, possibly a generator) in chunks of 25 over
    `writers` threads; the first error stops every writer and is raised."""
    stats, lock, failed = WriteStats(), threading.Lock(), threading.Event()
    chunks = _chunks(requests, stats)

    def writer() -> None:
        while not failed.is_set():
            with lock:
                chunk = next(chunks, None)
            if chunk is None:
                return
            try:
                write_chunk(client, table, chunk, backoff, stats)
            except BaseException:
                failed.set()
                raise

    started = time.perf_counter()
    try:
        with ThreadPoolExecutor(max_workers=max(1, writers)) as pool:
            for f in [pool.submit(writer) for _ in range(max(1, writers))]:
                f.result()
    finally:
        stats.write_s = time.perf_counter() - started
    return stats
