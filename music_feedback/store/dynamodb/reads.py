"""Queries of the DynamoDB adapter: the batch registry, the sharded channel merge, per-track cutoffs."""
from __future__ import annotations

import heapq
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator

from music_feedback.store.base import CANDIDATE_COLUMNS, SERVING_COLUMNS, ChannelQuery, PageKey, order_key, page_key
from music_feedback.store.dynamodb import keys

_FIELDS = (*CANDIDATE_COLUMNS, "program_id", "batch_date", "status")


def decode_item(item: dict) -> dict:
    return {c: keys.decode(c, item[c]) for c in _FIELDS if c in item}


def _pages(call, **kw) -> Iterator[dict]:
    while True:
        resp = call(**kw)
        yield from resp.get("Items", [])
        if "LastEvaluatedKey" not in resp:
            return
        kw["ExclusiveStartKey"] = resp["LastEvaluatedKey"]


def _names(*attributes: str) -> tuple[str, dict]:
    """A ProjectionExpression and its names (aliased: several column names are DynamoDB reserved words)."""
    return ", ".join(f"#a{i}" for i in range(len(attributes))), {f"#a{i}": a for i, a in enumerate(attributes)}


# -- registry (written by registry.py) ----------------------------------------------------------------------
def registry_item(item: dict) -> dict:
    """A registry head: its meta (an earlier head also holds "track_counts" inline), program and day."""
    meta = json.loads(item["meta"]["S"])
    meta["partitions"] = [tuple(p) for p in meta["partitions"]]
    return {**meta, "program_id": item["program_id"]["S"], "batch_date": item["batch_date"]["S"]}


def registry(client, table: str, program_id: str) -> list[dict]:
    items = _pages(client.query, TableName=table, KeyConditionExpression="PK = :pk AND begins_with(SK, :b)",
                   ExpressionAttributeValues={":pk": {"S": keys.registry_pk(program_id)}, ":b": {"S": "BATCH#"}},
                   ConsistentRead=True)
    return [registry_item(i) for i in items]


def all_registry(client, table: str) -> list[dict]:
    items = _pages(client.scan, TableName=table, FilterExpression="begins_with(SK, :b)",
                   ExpressionAttributeValues={":b": {"S": "BATCH#"}})
    return [registry_item(i) for i in items]


def _gsi1_pks(batch: dict, channel: str | None = None, marketplace: str | None = None) -> list[str]:
    return [keys.gsi1_pk(batch["program_id"], ch, m, batch["batch_date"], s)
            for ch, m in batch["partitions"] if channel in (None, ch) and marketplace in (None, m)
            for s in range(batch["shards"])]


def batch_rows(client, table: str, batch: dict) -> dict[tuple[str, str], str]:
    """Every (PK, SK) of a stored day with its status, read through its GSI1 partitions."""
    out = {}
    for gpk in _gsi1_pks(batch):
        for i in _pages(client.query, TableName=table, IndexName="GSI1", KeyConditionExpression="GSI1PK = :p",
                        ExpressionAttributeValues={":p": {"S": gpk}}, ProjectionExpression="PK, SK, #s",
                        ExpressionAttributeNames={"#s": "status"}):
            out[(i["PK"]["S"], i["SK"]["S"])] = i["status"]["S"]
    return out


def live_expiries(client, table: str, batch: dict, ts: float) -> list[int]:
    """expires_at of a day's rows still live at `ts`."""
    return [int(i["expires_at"]["N"]) for gpk in _gsi1_pks(batch) for i in _pages(
        client.query, TableName=table, IndexName="GSI1", KeyConditionExpression="GSI1PK = :p",
        FilterExpression="expires_at > :now", ProjectionExpression="expires_at",
        ExpressionAttributeValues={":p": {"S": gpk}, ":now": keys.number(ts)})]


def scan_expired(client, table: str, ts: float) -> list[dict]:
    """Candidate rows (SK `B#...`; not the registry's heads and count items, which purge_expired deletes with
    their day) expired at `ts`."""
    return [{"PK": i["PK"], "SK": i["SK"]} for i in _pages(
        client.scan, TableName=table, FilterExpression="expires_at <= :now AND begins_with(SK, :b)",
        ProjectionExpression="PK, SK", ExpressionAttributeValues={":now": keys.number(ts), ":b": {"S": "B#"}})]


# -- one listener, one track ------------------------------------------------------------------------------
def listener_rows(client, table: str, program_id: str, listener_id: int, ts: float) -> list[dict]:
    return [decode_item(i) for i in _pages(
        client.query, TableName=table, KeyConditionExpression="PK = :pk", FilterExpression="expires_at > :now",
        ExpressionAttributeValues={":pk": {"S": keys.pk(listener_id, program_id)}, ":now": keys.number(ts)})]


def track_rows(client, table: str, program_id: str, track_id: int, batch_date: str, ts: float) -> list[dict]:
    return [decode_item(i) for i in _pages(
        client.query, TableName=table, IndexName="GSI2", FilterExpression="expires_at > :now",
        KeyConditionExpression="GSI2PK = :pk AND begins_with(GSI2SK, :d)",
        ExpressionAttributeValues={":pk": {"S": keys.gsi2_pk(program_id, track_id)},
                                   ":d": {"S": f"B#{batch_date}#"}, ":now": keys.number(ts)})]


# -- the channel query --------------------------------------------------------------------------------------
def _filter(q: ChannelQuery, ts: float) -> tuple[str, dict, dict]:
    expr, values, names = "expires_at > :now", {":now": keys.number(ts)}, {}
    if q.status is not None:
        expr += " AND #s = :st"
        values[":st"], names["#s"] = {"S": q.status}, "status"
    return expr, values, names


_SERVED = dict(zip(("ProjectionExpression", "ExpressionAttributeNames"),
                   _names("GSI1SK", *SERVING_COLUMNS, "program_id", "batch_date", "status")))


class _Shard:
    """One GSI1 partition read lazily from a position, in sort-key order."""

    def __init__(self, client, table: str, pk: str, date: str, lo: str | None, hi: str, q: ChannelQuery, ts: float,
                 full: bool = False):
        expr, values, names = _filter(q, ts)
        cond = "GSI1PK = :p AND " + ("GSI1SK <= :hi" if lo is None else "GSI1SK BETWEEN :lo AND :hi")
        values = {**values, ":p": {"S": pk}, ":hi": {"S": hi}, **({":lo": {"S": lo}} if lo is not None else {})}
        project = {} if full else _SERVED  # a page reads only what it serves
        self.kw = dict(TableName=table, IndexName="GSI1", KeyConditionExpression=cond, FilterExpression=expr,
                       ExpressionAttributeValues=values, **project)
        if names or project:
            self.kw["ExpressionAttributeNames"] = {**names, **project.get("ExpressionAttributeNames", {})}
        self.client, self.date, self.buffer, self.done = client, date, [], False

    def fill(self, limit: int) -> "_Shard":
        while not self.buffer and not self.done:  # a filtered-out chunk can come back empty
            resp = self.client.query(**self.kw, Limit=limit)
            self.buffer = [((i["GSI1SK"]["S"], self.date), i) for i in resp.get("Items", [])]
            self.done = "LastEvaluatedKey" not in resp
            if not self.done:
                self.kw["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
        return self

    def rows(self, limit: int) -> Iterator[tuple]:
        while True:
            yield from self.buffer
            self.buffer = []
            if self.done:
                return
            self.fill(limit)


def channel_page(client, table: str, batches: list[dict], q: ChannelQuery, after: PageKey | None, size: int,
                 cutoffs: dict[int, PageKey], ts: float, full: bool = False) -> list[dict]:
    hi = keys.inverted(q.min_score) + "#~"
    shards = []
    for b in batches:
        lo = None
        if after is not None:
            lo = keys.after_sk(after) + ("" if b["batch_date"] > after[3] else "!")
            if lo > hi:
                continue
        shards += [_Shard(client, table, pk, b["batch_date"], lo, hi, q, ts, full)
                   for pk in _gsi1_pks(b, q.channel, q.marketplace)]
    if not shards or size <= 0:
        return []
    first = min(size, max(50, 2 * size // len(shards))) + 1
    with ThreadPoolExecutor(max_workers=min(16, len(shards))) as pool:  # first chunks in parallel
        list(pool.map(lambda s: s.fill(first), shards))
    chunk = min(size, max(1_000 if full else 500, first))  # a large page refills in large reads
    cut = {t: order_key(k) for t, k in cutoffs.items()}
    out = []
    for _, item in heapq.merge(*(s.rows(chunk) for s in shards), key=lambda e: e[0]):
        row = decode_item(item)
        if row["track_id"] in cut and order_key(page_key(row)) > cut[row["track_id"]]:
            continue
        out.append(row)
        if len(out) >= size:
            break
    return out


def _track_keys(client, table: str, q: ChannelQuery, track: int, batch_date: str, ts: float) -> list[tuple]:
    """order_key of every row of `track` in one day that the query matches, whatever its status. Reads the
    day's GSI2 range only, filtered in the table and projected to the sort key and score: the listener and
    the channel are in GSI2SK."""
    proj, names = _names("GSI2SK", "score", "channel", "expires_at", "marketplace")
    expr = "#a2 = :ch AND #a1 >= :min AND #a3 > :now" + (" AND #a4 = :m" if q.marketplace is not None else "")
    values = {":pk": {"S": keys.gsi2_pk(q.program_id, track)}, ":d": {"S": f"B#{batch_date}#"},
              ":ch": {"S": q.channel}, ":min": keys.number(q.min_score), ":now": keys.number(ts),
              **({":m": {"S": q.marketplace}} if q.marketplace is not None else {})}
    return [(-float(i["score"]["N"]), int(i["GSI2SK"]["S"].split("#", 4)[3]), track, batch_date)
            for i in _pages(client.query, TableName=table, IndexName="GSI2", ProjectionExpression=proj,
                            KeyConditionExpression="GSI2PK = :pk AND begins_with(GSI2SK, :d)", FilterExpression=expr,
                            ExpressionAttributeNames=names, ExpressionAttributeValues=values)]


def cutoffs(client, table: str, batches: list[dict], q: ChannelQuery, ts: float) -> dict[int, PageKey]:
    """The registry's per-track counts (each batch's "track_counts", reassembled from its count items by the
    store) name the tracks that can exceed the cap; only those are read, each live day's range of them in
    parallel (the client is thread-safe)."""
    if q.max_per_track is None:
        return {}
    totals: dict[int, int] = {}
    for b in batches:
        for t, n in b["track_counts"].get(q.channel, {}).items():
            totals[int(t)] = totals.get(int(t), 0) + n
    over = sorted(t for t, n in totals.items() if n > q.max_per_track)
    work = [(t, b["batch_date"]) for t in over for b in batches]
    if not work:
        return {}
    with ThreadPoolExecutor(max_workers=min(8, len(work))) as pool:
        found = list(pool.map(lambda w: _track_keys(client, table, q, w[0], w[1], ts), work))
    by_track: dict[int, list[tuple]] = {}
    for (t, _), ks in zip(work, found):
        by_track.setdefault(t, []).extend(ks)
    out = {}
    for track, ks in by_track.items():
        if len(ks) > q.max_per_track:
            ks.sort()
            k = ks[q.max_per_track - 1]
            out[track] = (-k[0], k[1], k[2], k[3])
    return out
