"""The low-level plumbing the store's halves share: one boto3 client per endpoint, paginated queries,
conditional updates that report whether they applied, and a thread pool for many of them."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Iterator

_clients: dict[tuple, object] = {}


def client_for(endpoint_url: str | None, region: str, workers: int):
    k = (endpoint_url, region, workers)
    if k not in _clients:
        import boto3
        from botocore.config import Config
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


def parallel(fn: Callable, args: Iterable, workers: int) -> list:
    args = list(args)
    if len(args) <= 1 or workers <= 1:
        return [fn(a) for a in args]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, args))
