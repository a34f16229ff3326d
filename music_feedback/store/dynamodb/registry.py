"""The batch registry: one small head item per stored day, and the day's per-track counts in shard items.

A day of 20,000 tracks put its counts in one item past DynamoDB's 400 KB limit, so the counts live apart:

  head    PK `P#<program>`               SK `BATCH#<date>`          partitions, rows, shards, expiries, and
                                                                    which generation of counts is the day's
  counts  PK `P#<program>#B#<date>#C`    SK `G#<generation>#<part>` `c`: lines `channel<TAB>track<TAB>n`,
                                                                    at most COUNTS_BYTES each

The generation is a hash of the counts: a retry of the same day writes the same items again (idempotent).
A write puts every count item of the new generation first (BatchWriteItem, unprocessed items re-sent),
then the head (one PutItem: the switch), then deletes the other generations' count items: a reader sees
the old day whole or the new day whole, never half; a run that dies before the switch leaves the old head
and unreferenced items that the next write of the day deletes.

Heads written before this layout (counts inline in `meta`, "track_counts") are still read as they are.
"""
from __future__ import annotations

import hashlib
import json
from typing import Callable

from music_feedback.store.dynamodb import keys
from music_feedback.store.dynamodb.reads import _pages, registry_item
from music_feedback.store.dynamodb.size import ITEM_LIMIT, item_size

COUNTS_BYTES = 64 * 1024  # a count item's payload: far under the 400 KB limit whatever the tracks a day
READ_ATTEMPTS = 3


class RegistryChanged(RuntimeError):
    """A day's counts were replaced under a reader more often than it retried."""


def head_key(program_id: str, batch_date: str) -> dict:
    return {"PK": {"S": keys.registry_pk(program_id)}, "SK": {"S": f"BATCH#{batch_date}"}}


def counts_pk(program_id: str, batch_date: str) -> str:
    return f"P#{program_id}#B#{batch_date}#C"


def encode_counts(counts: dict[str, dict[str, int]]) -> list[str]:
    """The counts as text parts of at most COUNTS_BYTES, in a stable order."""
    parts, lines, size = [], [], 0
    for ch in sorted(counts):
        for t in sorted(counts[ch], key=int):
            line = f"{ch}\t{t}\t{counts[ch][t]}\n"
            if size + len(line) > COUNTS_BYTES and lines:
                parts.append("".join(lines))
                lines, size = [], 0
            lines.append(line)
            size += len(line.encode())
    if lines:
        parts.append("".join(lines))
    return parts


def decode_counts(parts: list[str]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for text in parts:
        for line in text.splitlines():
            ch, t, n = line.split("\t")
            out.setdefault(ch, {})[t] = int(n)
    return out


def generation(parts: list[str]) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode())
    return h.hexdigest()[:16]


def put(client, table: str, program_id: str, batch_date: str, meta: dict, counts: dict[str, dict[str, int]] | None,
        write: Callable[[list[dict]], None], known: dict | None = None) -> dict:
    """Write a day's registry: count items, then the head, then remove other generations. `counts` None keeps
    the counts `known` (the head read before) refers to. `write` sends Put/Delete requests (the store's
    backed-off batch loop). Returns the head's meta as written."""
    expires = str(meta["max_expires"])
    if counts is None:
        gen, n = known["counts_gen"], known["counts_parts"]
    else:
        parts = encode_counts(counts)
        gen, n = generation(parts), len(parts)
        if not (known and known.get("counts_gen") == gen and known.get("counts_parts") == n):
            items = [{"PK": {"S": counts_pk(program_id, batch_date)}, "SK": {"S": f"G#{gen}#{i:05d}"},
                      "c": {"S": p}, "expires_at": {"N": expires}, "ttl": {"N": expires}}
                     for i, p in enumerate(parts)]
            for item in items:
                assert item_size(item) < ITEM_LIMIT, "a count item passed the item limit"
            write([{"PutRequest": {"Item": i}} for i in items])
    meta = {k: v for k, v in meta.items() if k != "track_counts"}
    meta.update(counts_gen=gen, counts_parts=n)
    item = {**head_key(program_id, batch_date), "program_id": {"S": program_id}, "batch_date": {"S": batch_date},
            "meta": {"S": json.dumps(meta, separators=(",", ":"))},
            # DynamoDB's TTL removes the registry entry with the day's last row (an empty day: at once).
            "expires_at": {"N": expires}, "ttl": {"N": expires}}
    assert item_size(item) < ITEM_LIMIT, "the registry head passed the item limit"
    client.put_item(TableName=table, Item=item)
    stale = [k for k in _count_keys(client, table, program_id, batch_date) if not k["SK"]["S"].startswith(f"G#{gen}#")]
    if stale:
        write([{"DeleteRequest": {"Key": k}} for k in stale])
    return meta


def _count_keys(client, table: str, program_id: str, batch_date: str, prefix: str = "G#") -> list[dict]:
    return [{"PK": i["PK"], "SK": i["SK"]} for i in _pages(
        client.query, TableName=table, KeyConditionExpression="PK = :pk AND begins_with(SK, :g)",
        ExpressionAttributeValues={":pk": {"S": counts_pk(program_id, batch_date)}, ":g": {"S": prefix}},
        ProjectionExpression="PK, SK", ConsistentRead=True)]


def track_counts(client, table: str, batch: dict) -> dict[str, dict[str, int]]:
    """A day's per-track counts: inline in a head of the earlier layout, else its generation's count items
    (all of them, or the head is read again: a writer switched generations in between)."""
    for _ in range(READ_ATTEMPTS):
        if "track_counts" in batch:
            return batch["track_counts"]
        if not batch.get("counts_parts"):
            return {}
        items = list(_pages(client.query, TableName=table, ConsistentRead=True,
                            KeyConditionExpression="PK = :pk AND begins_with(SK, :g)",
                            ExpressionAttributeValues={":pk": {"S": counts_pk(batch["program_id"], batch["batch_date"])},
                                                       ":g": {"S": f"G#{batch['counts_gen']}#"}}))
        if len(items) == batch["counts_parts"]:
            return decode_counts([i["c"]["S"] for i in sorted(items, key=lambda i: i["SK"]["S"])])
        got = client.get_item(TableName=table, Key=head_key(batch["program_id"], batch["batch_date"]),
                              ConsistentRead=True)
        if "Item" not in got:
            return {}
        batch = registry_item(got["Item"])
    raise RegistryChanged(f"the registry of {batch['program_id']} {batch['batch_date']} in {table} kept changing")


def delete(client, table: str, program_id: str, batch_date: str, write: Callable[[list[dict]], None]) -> None:
    client.delete_item(TableName=table, Key=head_key(program_id, batch_date))
    stale = _count_keys(client, table, program_id, batch_date)
    if stale:
        write([{"DeleteRequest": {"Key": k}} for k in stale])
