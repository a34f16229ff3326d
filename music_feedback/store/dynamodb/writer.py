"""BatchWriteItem in requests of 25, re-sending UnprocessedItems with exponential backoff and full
jitter (boto3's batch_writer re-sends at once, which keeps a throttled table throttled), over
several writer threads."""
from __future__ import annotations

import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

BATCH = 25


class StoreWriteError(RuntimeError):
    """Writes the table kept refusing; the batch step fails and a re-run completes the day."""


@dataclass
class WriteStats:
    requests: int = 0
    retries: int = 0
    sleep_s: float = 0.0


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
        stats.requests += 1
        resp = client.batch_write_item(RequestItems={table: pending})
        pending = resp.get("UnprocessedItems", {}).get(table, [])
        if not pending:
            return
        if attempt >= backoff.max_retries:
            raise StoreWriteError(
                f"DynamoDB table {table!r} left {len(pending)} item(s) unprocessed after {backoff.max_retries} "
                f"retries (throttled): the day is incomplete; raise the table's capacity or retry later, then "
                f"re-run the day (re-storing a day is idempotent)")
        wait = backoff.delay(attempt)
        stats.retries += 1
        stats.sleep_s += wait
        backoff.sleep(wait)
        attempt += 1


def write_all(client, table: str, requests: list[dict], writers: int, backoff: Backoff) -> WriteStats:
    """Send `requests` (PutRequest/DeleteRequest dicts) in chunks of 25 over `writers` threads."""
    stats = WriteStats()
    chunks = [requests[i:i + BATCH] for i in range(0, len(requests), BATCH)]
    if writers <= 1 or len(chunks) <= 1:
        for chunk in chunks:
            write_chunk(client, table, chunk, backoff, stats)
        return stats
    with ThreadPoolExecutor(max_workers=writers) as pool:
        # Each thread takes every writers-th chunk; the first error stops the step.
        futures = [pool.submit(lambda part: [write_chunk(client, table, c, backoff, stats) for c in part],
                               chunks[w::writers]) for w in range(writers)]
        for f in futures:
            f.result()
    return stats
