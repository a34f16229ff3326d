"""AWS adapter of the score cache: a DynamoDB table keyed by pair, model versions and feature fingerprint,
with TTL.

Keys: pk = PAIR#<program>#<listener>#<track>, sk = <versions>#<fingerprint, 16 hex digits>. Items of the
first layout (sk = <versions>, no fingerprint) match no key any more and leave by TTL. TTL deletion lags,
so reads filter expired items. BatchGetItem (100 keys) and BatchWriteItem (25 items) resend what DynamoDB
leaves unprocessed, with exponential backoff and jitter.
"""
from __future__ import annotations

import random
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from decimal import Decimal
from typing import Optional

import boto3
import polars as pl
from botocore.config import Config
from pydantic import Field, PrivateAttr

from music_feedback.scoring.cache.port import KEY, SCHEMA, SCORES, ScoreCache, epoch

GET_CHUNK, PUT_CHUNK, MAX_TRIES = 100, 25, 8


TTL_ATTRIBUTE = "expires_at"


def definition(table_name: str) -> dict:
    return {"TableName": table_name, "BillingMode": "PAY_PER_REQUEST",
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
                                     {"AttributeName": "sk", "AttributeType": "S"}],
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}]}


def _pk(program_id: str, listener_id: int, track_id: int) -> str:
    return f"PAIR#{program_id}#{listener_id}#{track_id}"


def _sk(versions: str, fingerprint: int) -> str:
    return f"{versions}#{fingerprint:016x}"


class DynamoDBScoreCache(ScoreCache):
    table_name: str = Field(default="music-feedback-score-cache", description=(
        'DynamoDB table of the score cache (MUSIC_FEEDBACK_SCORE_CACHE_TABLE).'))
    region_name: str = Field(default="us-east-1", description=(
        'DynamoDB region (AWS_REGION, else AWS_DEFAULT_REGION).'))
    endpoint_url: Optional[str] = Field(default=None, description=(
        "DynamoDB endpoint; None: boto3's own (AWS_ENDPOINT_URL_DYNAMODB, else the region's)."))
    workers: int = Field(default=4, description='Threads sending the batch calls.')
    _client = PrivateAttr(default=None)

    def client(self):
        if self._client is None:
            self._client = boto3.client("dynamodb", region_name=self.region_name, endpoint_url=self.endpoint_url,
                                        config=Config(max_pool_connections=max(10, 2 * self.workers)))
        return self._client

    def ensure_table(self) -> None:
        """Create the table (on-demand, TTL on expires_at) if it does not exist."""
        c = self.client()
        if self.table_name in c.list_tables().get("TableNames", []):
            return
        c.create_table(**definition(self.table_name))
        c.get_waiter("table_exists").wait(TableName=self.table_name)
        c.update_time_to_live(TableName=self.table_name,
                              TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE})

    @staticmethod
    def _backoff(attempt: int) -> None:
        time.sleep(min(2.0, 0.05 * 2 ** attempt) * random.random())

    def _each(self, fn, chunks: list) -> list:
        """`fn` over the chunks on `workers` threads (one client, which is thread-safe): the calls overlap
        their round trips, and a day's pairs make thousands of them."""
        self.client()  # created once, before the threads share it
        if self.workers <= 1 or len(chunks) <= 1:
            return [fn(c) for c in chunks]
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            return list(pool.map(fn, chunks))

    def _get(self, keys: list[dict], cutoff: int) -> list[tuple]:
        rows, request = [], {self.table_name: {"Keys": keys, "ConsistentRead": True}}
        for attempt in range(MAX_TRIES):
            answer = self.client().batch_get_item(RequestItems=request)
            for item in answer.get("Responses", {}).get(self.table_name, []):
                if int(item["expires_at"]["N"]) > cutoff:
                    rows.append((int(item["listener_id"]["N"]), int(item["track_id"]["N"]),
                                 int(item["sk"]["S"].rsplit("#", 1)[1], 16),
                                 float(item["propensity_score"]["N"]), float(item["affinity_score"]["N"])))
            request = answer.get("UnprocessedKeys") or {}
            if not request:
                return rows
            self._backoff(attempt)
        raise RuntimeError(f"score cache {self.table_name}: DynamoDB left keys unprocessed after {MAX_TRIES} tries")

    def lookup(self, program_id: str, versions: str, pairs: pl.DataFrame, now: datetime) -> pl.DataFrame:
        keys = [{"pk": {"S": _pk(program_id, lid, tid)}, "sk": {"S": _sk(versions, fp)}}
                for lid, tid, fp in pairs.select(KEY).unique().iter_rows()]
        cutoff = epoch(now)
        found = self._each(lambda part: self._get(part, cutoff),
                           [keys[i:i + GET_CHUNK] for i in range(0, len(keys), GET_CHUNK)])
        return pl.DataFrame([r for rows in found for r in rows], schema=SCHEMA, orient="row")

    def _put(self, items: list[dict]) -> None:
        request = {self.table_name: items}
        for attempt in range(MAX_TRIES):
            request = self.client().batch_write_item(RequestItems=request).get("UnprocessedItems") or {}
            if not request:
                return
            self._backoff(attempt)
        raise RuntimeError(f"score cache {self.table_name}: DynamoDB left writes unprocessed after {MAX_TRIES} tries")

    def store(self, program_id: str, versions: str, scores: pl.DataFrame, now: datetime) -> int:
        expires = str(self.expires_at(now))
        items = [{"PutRequest": {"Item": {
            "pk": {"S": _pk(program_id, lid, tid)}, "sk": {"S": _sk(versions, fp)},
            "listener_id": {"N": str(lid)}, "track_id": {"N": str(tid)},
            "propensity_score": {"N": str(Decimal(repr(p)))}, "affinity_score": {"N": str(Decimal(repr(a)))},
            "expires_at": {"N": expires}}}}
            for lid, tid, fp, p, a in scores.select(*KEY, *SCORES).unique(list(KEY)).iter_rows()]
        self._each(self._put, [items[i:i + PUT_CHUNK] for i in range(0, len(items), PUT_CHUNK)])
        return len(items)

    def purge_expired(self, now: datetime) -> int:
        """DynamoDB's TTL deletes expired items itself (within about two days); reads skip them meanwhile."""
        return 0
