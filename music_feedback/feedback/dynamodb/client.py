"""The low-level plumbing the store's halves share: one boto3 client per endpoint, paginated queries,
conditional updates that report whether they applied, and a thread pool for many of them."""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Iterator

import boto3
from botocore.config import Config

_clients: dict[tuple, object] = {}


def client_for(endpoint_url: str | None, region: str, workers: int):
    # boto3 resolves an unset endpoint from the environment: a cached client must not outlive a change of it.
    k = (endpoint_url, region, workers, os.environ.get("AWS_ENDPOINT_URL_DYNAMODB"), os.environ.get("AWS_ENDPOINT_URL"))
    if k not in _clients:
        _clients[k] = boto3.client("dynamodb", endpoint_url=endpoint_url, region_name=region,
                                   config=Config(max_pool_connections=max(10, 2 * workers),
                                                 retries={"mode": "standard", "max_attempts": 8}))
    return _clients[k]


def query(client, **kw) -> Iterator[dict]:
    """Every item of a Query, page after page."""
    while True:
        page = client.query(**kw)
        yield from page.get("Items", [])
        if "LastEvaluatedKey" not in page:
            return
        kw["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def conditional(client, **kw) -> bool:
    """An UpdateItem or PutItem with a condition: True if it applied, False if the condition failed."""
    op = client.update_item if "UpdateExpression" in kw else client.put_item
    try:
        op(**kw)
        return True
    except client.exceptions.ConditionalCheckFailedException:
        return False


TRANSACTION_ITEMS = 100


def conditional_many(client, writes: list[tuple[str, dict]], workers: int) -> list[bool]:
    """Many conditional writes ("Update" or "Put", kwargs), each judged on its own condition. A chunk goes as
    one transaction (a hundred writes in one call); when some condition fails the chunk is refused whole,
    and its writes go again one by one, so each reports whether it applied."""
    def chunk(part: list[tuple[str, dict]]) -> list[bool]:
        try:
            client.transact_write_items(TransactItems=[{op: kw} for op, kw in part])
            return [True] * len(part)
        except client.exceptions.TransactionCanceledException:
            return [conditional(client, **kw) for _, kw in part]
    parts = [writes[i:i + TRANSACTION_ITEMS] for i in range(0, len(writes), TRANSACTION_ITEMS)]
    return [ok for oks in parallel(chunk, parts, workers) for ok in oks]


def parallel(fn: Callable, args: Iterable, workers: int) -> list:
    args = list(args)
    if len(args) <= 1 or workers <= 1:
        return [fn(a) for a in args]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, args))
