"""DynamoDB adapter of the candidate store (boto3's low-level client; see keys.py for the layout).

Re-storing a day: the new rows are put (carrying over the delivery status of rows that were already
sent or answered), then the day's rows that are no longer in it are deleted, so a re-run, also after a
failed one, leaves exactly that day's rows. The registry item is written first and lists every
partition a run of the day has touched, so a later run finds what an interrupted one left.
"""
from __future__ import annotations

import os
import time
from datetime import datetime
from typing import Iterable

import boto3
import polars as pl
from botocore.config import Config
from pydantic import Field, PrivateAttr

from music_feedback.aws.settings import region_setting
from music_feedback.store.base import (
    DEFAULT_STATUS, STATUSES, CandidateStore, ChannelQuery, PageKey, epoch_now, validate_candidates)
from music_feedback.store.dynamodb import keys, reads, registry
from music_feedback.store.dynamodb import status as status_updates
from music_feedback.store.dynamodb.table import TTL_ATTRIBUTE, create_table
from music_feedback.store.dynamodb.writer import Backoff, WriteStats, write_all

_NUMBERS = {"listener_id", "track_id", "score", "propensity_score", "affinity_score", "artist_id", "expires_at"}
_clients: dict[tuple, object] = {}


class DynamoDBCandidateStore(CandidateStore):
    table_name: str = Field(default="music-feedback-candidates", description=(
        'DynamoDB table of the candidates (MUSIC_FEEDBACK_DYNAMODB_TABLE).'))
    endpoint_url: str | None = Field(default=None, description=(
        'DynamoDB Local or moto; None: AWS (MUSIC_FEEDBACK_DYNAMODB_ENDPOINT, else '
        'AWS_ENDPOINT_URL_DYNAMODB).'))
    region: str = Field(default="us-east-1", description=(
        'DynamoDB region (AWS_REGION, else AWS_DEFAULT_REGION).'))
    shards: int = Field(default=8, description=(
        'GSI1 partitions per (program, channel, marketplace, day) (MUSIC_FEEDBACK_DYNAMODB_SHARDS).'))
    writers: int = Field(default=4, description=(
        'Threads writing the 25-item batches (MUSIC_FEEDBACK_DYNAMODB_WRITERS).'))
    max_retries: int = Field(default=8, description='Re-sends of unprocessed items before a write fails.')
    backoff_base_s: float = Field(default=0.05, description=(
        'Backoff base in seconds between re-sends (exponential, with jitter).'))
    backoff_cap_s: float = Field(default=5.0, description='Backoff cap in seconds.')
    _last_write: WriteStats | None = PrivateAttr(default=None)

    @classmethod
    def from_env(cls, env_vars: bool = False) -> "DynamoDBCandidateStore":
        """With `env_vars` (the Dagster set), the region is an `EnvVar` resolved at run launch."""
        env = os.environ.get
        region = env("AWS_REGION", env("AWS_DEFAULT_REGION", "us-east-1"))
        if env_vars:
            region = region_setting()
        return cls(table_name=env("MUSIC_FEEDBACK_DYNAMODB_TABLE", "music-feedback-candidates"),
                   endpoint_url=env("MUSIC_FEEDBACK_DYNAMODB_ENDPOINT") or None,
                   region=region,
                   shards=int(env("MUSIC_FEEDBACK_DYNAMODB_SHARDS", "8")),
                   writers=int(env("MUSIC_FEEDBACK_DYNAMODB_WRITERS", "4")))

    def client(self):
        """One thread-safe client per endpoint, shared by the writer threads. Unset, the endpoint is boto3's
        from AWS_ENDPOINT_URL(_DYNAMODB): it belongs in the key, or a stopped stand-in's client is reused."""
        env = os.environ.get
        endpoint = self.endpoint_url or env("AWS_ENDPOINT_URL_DYNAMODB") or env("AWS_ENDPOINT_URL")
        k = (endpoint, self.region, self.writers)
        if k not in _clients:
            _clients[k] = boto3.client("dynamodb", endpoint_url=self.endpoint_url, region_name=self.region,
                                       config=Config(max_pool_connections=max(10, 2 * self.writers),
                                                     retries={"mode": "standard", "max_attempts": 5}))
        return _clients[k]

    def create_table(self, ttl: bool = True) -> bool:
        return create_table(self.client(), self.table_name, ttl)

    @property
    def last_write(self) -> WriteStats | None:
        return self._last_write

    # -- writes -------------------------------------------------------------------------------------------
    def _item(self, program_id: str, batch_date: str, r: dict, status: str) -> dict:
        item = {c: (keys.number(v) if c in _NUMBERS else keys.text(v)) for c, v in r.items()}
        lid, tid, ch = r["listener_id"], r["track_id"], r["channel"]
        item.update({
            "PK": {"S": keys.pk(lid, program_id)}, "SK": {"S": keys.sk(batch_date, tid, ch)},
            "GSI1PK": {"S": keys.gsi1_pk(program_id, ch, r["marketplace"] or "-", batch_date,
                                         keys.shard(lid, self.shards))},
            "GSI1SK": {"S": keys.gsi1_sk(r["score"], lid, tid)},
            "GSI2PK": {"S": keys.gsi2_pk(program_id, tid)}, "GSI2SK": {"S": keys.gsi2_sk(batch_date, lid, ch)},
            "program_id": {"S": program_id}, "batch_date": {"S": batch_date}, "status": {"S": status},
            TTL_ATTRIBUTE: {"N": str(int(r["expires_at"]))}})
        return item

    def _registry(self, program_id: str) -> list[dict]:
        return reads.registry(self.client(), self.table_name, program_id)

    def put_batch(self, program_id: str, batch_date: str, candidates: pl.DataFrame) -> int:
        df = validate_candidates(candidates)
        client, table = self.client(), self.table_name
        started = time.perf_counter()
        old = next((b for b in self._registry(program_id) if b["batch_date"] == batch_date), None)
        old_rows = reads.batch_rows(client, table, old) if old else {}
        read_old_s = time.perf_counter() - started
        counts: dict[str, dict[str, int]] = {}
        for ch, t, n in df.group_by("channel", "track_id").len().iter_rows():
            counts.setdefault(ch, {})[str(t)] = n
        new_parts = sorted({(ch, m or "-") for ch, m in df.select("channel", "marketplace").unique().iter_rows()})
        meta = {"partitions": new_parts, "rows": df.height, "shards": self.shards,
                "min_expires": int(df["expires_at"].min()) if df.height else 0,
                "max_expires": int(df["expires_at"].max()) if df.height else 0}
        backoff = Backoff(self.max_retries, self.backoff_base_s, self.backoff_cap_s)

        def send(requests: list[dict]) -> None:
            write_all(client, table, requests, self.writers, backoff)

        # First, and covering what any earlier run wrote: a run that fails is found again by the next.
        known = registry.put(client, table, program_id, batch_date, {
            **meta, "partitions": sorted(set(new_parts) | {tuple(p) for p in (old or {}).get("partitions", [])}),
            "shards": max(self.shards, (old or {}).get("shards", 0)),
            "max_expires": max(meta["max_expires"], (old or {}).get("max_expires", 0))}, counts, send, old)
        new_keys: set[tuple[str, str]] = set()

        def requests():
            for r in df.iter_rows(named=True):
                key = (keys.pk(r["listener_id"], program_id), keys.sk(batch_date, r["track_id"], r["channel"]))
                new_keys.add(key)
                yield {"PutRequest": {"Item": self._item(program_id, batch_date, r, old_rows.get(key, DEFAULT_STATUS))}}
            for p, s in list(old_rows):  # after every put: the day's rows no longer in it
                if (p, s) not in new_keys:
                    yield {"DeleteRequest": {"Key": {"PK": {"S": p}, "SK": {"S": s}}}}

        self._last_write = write_all(client, table, requests(), self.writers, backoff)
        self._last_write.read_old_s = read_old_s
        if df.height:  # now exactly the new rows' partitions (the counts are already the day's)
            registry.put(client, table, program_id, batch_date, meta, counts, send, known)
        else:
            registry.delete(client, table, program_id, batch_date, send)
        return df.height

    def set_status(self, program_id: str, batch_date: str, keys_: Iterable[tuple[int, int, str]], status: str,
                   expected: str | None = None) -> int:
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}; one of {STATUSES}")
        return status_updates.set_status(self.client(), self.table_name, program_id, batch_date, keys_, status,
                                         expected)

    # -- reads --------------------------------------------------------------------------------------------
    def _live(self, program_id: str, ts: float, batch_date: str | None = None) -> list[dict]:
        return [b for b in self._registry(program_id)
                if b["max_expires"] > ts and batch_date in (None, b["batch_date"])]

    def for_listener(self, program_id: str, listener_id: int, now: datetime | None = None) -> list[dict]:
        rows = reads.listener_rows(self.client(), self.table_name, program_id, listener_id, epoch_now(now))
        rows.sort(key=lambda r: (r["track_id"], r["channel"]))
        rows.sort(key=lambda r: (r["batch_date"], r["score"]), reverse=True)  # stable: ties keep track order
        return rows

    def for_channel(self, program_id: str, channel: str, min_score: float = 0.0, limit: int = 100_000,
                    marketplace: str | None = None, max_per_track: int | None = None,
                    now: datetime | None = None) -> list[dict]:
        q = ChannelQuery(program_id, channel, min_score, marketplace, max_per_track, status=None)
        cut = self.track_cutoffs(q, now)
        rows = self.channel_page(q, None, limit, cut, now, full=True)
        return rows

    def for_track(self, program_id: str, track_id: int, batch_date: str, now: datetime | None = None) -> list[dict]:
        rows = reads.track_rows(self.client(), self.table_name, program_id, track_id, batch_date, epoch_now(now))
        rows.sort(key=lambda r: (-r["score"], r["listener_id"], r["channel"]))
        return rows

    def track_cutoffs(self, query: ChannelQuery, now: datetime | None = None) -> dict[int, PageKey]:
        ts = epoch_now(now)
        client, batches = self.client(), self._live(query.program_id, ts, query.batch_date)
        if query.max_per_track is None:
            return {}
        batches = [{**b, "track_counts": registry.track_counts(client, self.table_name, b)} for b in batches]
        return reads.cutoffs(client, self.table_name, batches, query, ts)

    def channel_page(self, query: ChannelQuery, after: PageKey | None, size: int, cutoffs: dict[int, PageKey],
                     now: datetime | None = None, full: bool = False) -> list[dict]:
        ts = epoch_now(now)
        return reads.channel_page(self.client(), self.table_name, self._live(query.program_id, ts, query.batch_date), query, after,
                                  size, cutoffs, ts, full=full)

    def count(self, program_id: str, batch_date: str | None = None, now: datetime | None = None) -> int:
        ts = epoch_now(now)
        batches = [b for b in self._live(program_id, ts) if batch_date in (None, b["batch_date"])]
        return sum(b["rows"] if b["min_expires"] > ts else
                   len(reads.live_expiries(self.client(), self.table_name, b, ts)) for b in batches)

    def ping(self) -> None:
        self.client().describe_table(TableName=self.table_name)

    def purge_expired(self, now: datetime | None = None) -> int:
        """DynamoDB's TTL deletes expired items on its own, up to two days late; this does it now."""
        ts = epoch_now(now)
        client, table = self.client(), self.table_name
        backoff = Backoff(self.max_retries, self.backoff_base_s, self.backoff_cap_s)

        def send(requests: list[dict]) -> None:
            write_all(client, table, requests, self.writers, backoff)

        expired = reads.scan_expired(client, table, ts)
        send([{"DeleteRequest": {"Key": k}} for k in expired])
        for b in reads.all_registry(client, table):
            if b["max_expires"] <= ts:
                registry.delete(client, table, b["program_id"], b["batch_date"], send)
            elif b["min_expires"] <= ts:  # partly expired: the registry's count must follow
                left = reads.live_expiries(client, table, b, ts)
                meta = {k: v for k, v in b.items() if k not in ("program_id", "batch_date", "track_counts")}
                counts = b.get("track_counts")  # a head of the earlier layout moves its counts out now
                registry.put(client, table, b["program_id"], b["batch_date"],
                             {**meta, "rows": len(left), "min_expires": min(left)}, counts, send,
                             None if counts is not None else b)
        return len(expired)

