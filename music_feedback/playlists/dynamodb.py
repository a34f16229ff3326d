"""DynamoDB adapter of the playlist store: every task of a cluster reads and moves the same playlists.

One table, `pk`/`sk` strings, on-demand. Items (program P):

| pk | sk | holds |
|---|---|---|
| `P#<P>` | `HEAD` | `version` (a number), `days` (run date -> generation of its audit rows), `members` (generation of the members snapshot) |
| `P#<P>#A` | `<run date>#<generation>#<seq>` | one audit row (a move), `seq` in the order applied |
| `P#<P>#M#<generation>` | `<marketplace>#<genre>#<track id>` | one member of the snapshot |

A day's moves are written under a fresh generation first, then the members are replayed from the audit
the head names (with this day's new generation) into a fresh snapshot, and the head is swapped to both
with a conditional write on its `version`: two runs moving the same program (the schedule and a recount,
or backfilled days in parallel) never lose each other's moves; the loser re-reads the head and replays
again. Until the head moves, readers see the previous day's state; rows of replaced generations are
deleted afterwards (a crash leaves them unread, never wrong). Writes are BatchWriteItem requests of 25,
items handed back as unprocessed re-sent with backoff (store/dynamodb/writer.py).
"""
from __future__ import annotations

import math
import random
import time
import uuid
from decimal import Decimal
from typing import Optional

import boto3
import polars as pl
from botocore.config import Config
from botocore.exceptions import ClientError
from pydantic import Field, PrivateAttr

from music_feedback.playlists.store import AUDIT_COLUMNS, AUDIT_SCHEMA, MEMBERS_SCHEMA, PlaylistStore
from music_feedback.store.dynamodb.writer import BATCH, Backoff, WriteStats, write_chunk

_NUMBERS = {"track_id", "prior", "up", "down", "votes", "score", "at"}
_INTS = {"track_id", "votes"}
HEAD = "HEAD"


def definition(table_name: str) -> dict:
    """The table: `pk`/`sk` strings, on-demand capacity, no index."""
    return {"TableName": table_name, "BillingMode": "PAY_PER_REQUEST",
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
                                     {"AttributeName": "sk", "AttributeType": "S"}],
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}]}


class PlaylistsChangedError(RuntimeError):
    """The program's playlists kept changing under an update; re-running the day completes it."""


def _num(column: str, value) -> dict:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"playlist {column} must be a finite number, got {value!r}")
    return {"N": str(int(value))} if column in _INTS else {"N": str(Decimal(repr(float(value))))}


def _encode(row: dict) -> dict:
    """Attributes of a row; a missing value is no attribute."""
    return {c: (_num(c, v) if c in _NUMBERS else {"S": str(v)}) for c, v in row.items() if v is not None}


def _decode(item: dict, schema: dict) -> dict:
    out = {}
    for c, dtype in schema.items():
        v = item.get(c)
        if v is None or "NULL" in v:
            out[c] = None
        elif "N" in v:
            out[c] = int(v["N"]) if dtype == pl.Int64 else float(v["N"])
        else:
            out[c] = v["S"]
    return out


def replay(audit: pl.DataFrame) -> pl.DataFrame:
    """Members from audit rows (in day order, then the order applied): each track's last move, kept when it
    is an entry, a member since that day."""
    if audit.is_empty():
        return pl.DataFrame(schema=MEMBERS_SCHEMA)
    last = audit.group_by("marketplace", "genre", "track_id", maintain_order=True).last()
    return (last.filter(pl.col("action") == "enter")
            .select("marketplace", "genre", "track_id", "track_name", "score", pl.col("run_date").alias("since"))
            .cast(MEMBERS_SCHEMA).sort("marketplace", "genre", "score", "track_id",
                                       descending=[False, False, True, False]))


class DynamoDBPlaylistStore(PlaylistStore):
    table_name: str = Field(default="music-feedback-playlists", description=(
        'DynamoDB table of the curated playlists and their audit rows (MUSIC_FEEDBACK_PLAYLISTS_TABLE).'))
    region_name: str = Field(default="us-east-1", description=(
        'DynamoDB region (AWS_REGION, else AWS_DEFAULT_REGION).'))
    endpoint_url: Optional[str] = Field(default=None, description=(
        "DynamoDB endpoint (DynamoDB Local, moto); None: boto3's own (AWS_ENDPOINT_URL_DYNAMODB, else the "
        "region's)."))
    max_attempts: int = Field(default=8, description=(
        'Tries of an update whose conditional head write lost to a concurrent one, before it fails.'))
    _client = PrivateAttr(default=None)

    def client(self):
        if self._client is None:
            self._client = boto3.client("dynamodb", region_name=self.region_name, endpoint_url=self.endpoint_url,
                                        config=Config(retries={"mode": "standard", "max_attempts": 5}))
        return self._client

    def create_table(self) -> bool:
        """Create the table if missing and wait until it is active; True if it was created."""
        client = self.client()
        try:
            client.create_table(**definition(self.table_name))
            created = True
        except client.exceptions.ResourceInUseException:
            created = False
        client.get_waiter("table_exists").wait(TableName=self.table_name,
                                               WaiterConfig={"Delay": 1, "MaxAttempts": 120})
        return created

    # -- reading ------------------------------------------------------------------------------------------
    def _head(self, program_id: str) -> dict:
        item = self.client().get_item(TableName=self.table_name, Key={"pk": {"S": f"P#{program_id}"},
                                                                      "sk": {"S": HEAD}},
                                      ConsistentRead=True).get("Item")
        if not item:
            return {"version": 0, "days": {}, "members": None}
        return {"version": int(item["version"]["N"]),
                "days": {d: g["S"] for d, g in item.get("days", {}).get("M", {}).items()},
                "members": item.get("members", {}).get("S")}

    def _query(self, pk: str, prefix: str | None = None) -> list[dict]:
        kw = {"TableName": self.table_name, "ConsistentRead": True,
              "KeyConditionExpression": "pk = :pk" + (" AND begins_with(sk, :p)" if prefix else ""),
              "ExpressionAttributeValues": {":pk": {"S": pk}, **({":p": {"S": prefix}} if prefix else {})}}
        items, start = [], None
        while True:
            page = self.client().query(**kw, **({"ExclusiveStartKey": start} if start else {}))
            items.extend(page.get("Items", []))
            start = page.get("LastEvaluatedKey")
            if not start:
                return items

    def _audit_rows(self, program_id: str, days: dict[str, str], before: str | None = None) -> pl.DataFrame:
        """The current generation's rows of each day in `days` (before `before`), in day and applied order
        (the sort key's order)."""
        rows = []
        for item in self._query(f"P#{program_id}#A"):
            day, gen, _ = item["sk"]["S"].split("#")
            if days.get(day) == gen and (before is None or day < before):
                rows.append({**_decode(item, AUDIT_SCHEMA), "program_id": program_id, "run_date": day})
        return pl.DataFrame(rows, schema=AUDIT_SCHEMA, orient="row") if rows else pl.DataFrame(schema=AUDIT_SCHEMA)

    def _consistent(self, program_id: str, read):
        """`read(head)` on a head that did not move while it read (the rows of a replaced generation may be
        deleted under a reader that started before the swap)."""
        for _ in range(self.max_attempts):
            head = self._head(program_id)
            out = read(head)
            if self._head(program_id)["version"] == head["version"]:
                return out
        raise PlaylistsChangedError(f"the playlists of program {program_id} in DynamoDB table {self.table_name} "
                                    f"kept changing while being read: try again")

    def members(self, program_id: str, before: str | None = None) -> pl.DataFrame:
        if before is not None:
            return self._consistent(program_id, lambda h: replay(self._audit_rows(program_id, h["days"], before)))

        def snapshot(head):
            if not head["members"]:
                return pl.DataFrame(schema=MEMBERS_SCHEMA)
            rows = [_decode(i, MEMBERS_SCHEMA) for i in self._query(f"P#{program_id}#M#{head['members']}")]
            return pl.DataFrame(rows, schema=MEMBERS_SCHEMA, orient="row").sort(
                "marketplace", "genre", "score", "track_id", descending=[False, False, True, False])
        return self._consistent(program_id, snapshot)

    def audit(self, program_id: str) -> pl.DataFrame:
        return self._consistent(program_id, lambda h: self._audit_rows(program_id, h["days"]))

    # -- writing ------------------------------------------------------------------------------------------
    def _write(self, requests: list[dict]) -> None:
        stats, backoff = WriteStats(), Backoff()
        for i in range(0, len(requests), BATCH):
            write_chunk(self.client(), self.table_name, requests[i:i + BATCH], backoff, stats)

    def _delete(self, pk: str, prefix: str | None = None) -> None:
        self._write([{"DeleteRequest": {"Key": {"pk": i["pk"], "sk": i["sk"]}}} for i in self._query(pk, prefix)])

    def apply(self, program_id: str, run_date: str, changes: pl.DataFrame, at: float) -> int:
        gen = uuid.uuid4().hex[:12]
        self._write([{"PutRequest": {"Item": {
            "pk": {"S": f"P#{program_id}#A"}, "sk": {"S": f"{run_date}#{gen}#{seq:06d}"},
            **_encode({**row, "at": at})}}} for seq, row in enumerate(changes.select(AUDIT_COLUMNS).iter_rows(
                named=True))])
        head, swapped = None, False
        try:
            for attempt in range(self.max_attempts):
                head = self._head(program_id)
                days = {**head["days"], run_date: gen}
                members_gen = uuid.uuid4().hex[:12]
                members = replay(self._audit_rows(program_id, days))
                self._write([{"PutRequest": {"Item": {
                    "pk": {"S": f"P#{program_id}#M#{members_gen}"},
                    "sk": {"S": f"{m['marketplace']}#{m['genre']}#{m['track_id']}"}, **_encode(m)}}}
                    for m in members.iter_rows(named=True)])
                if self._swap(program_id, head, days, members_gen):
                    swapped = True
                    break
                self._delete(f"P#{program_id}#M#{members_gen}")  # lost to a concurrent update: replay again
                time.sleep(random.uniform(0, min(1.0, 0.02 * 2 ** attempt)))
        finally:
            if not swapped:  # nothing of the day was applied: take its rows back
                self._delete(f"P#{program_id}#A", f"{run_date}#{gen}#")
        if not swapped:
            raise PlaylistsChangedError(
                f"the playlists of program {program_id} in DynamoDB table {self.table_name} changed under "
                f"{self.max_attempts} attempts to apply {run_date}'s moves: nothing of that day was applied; "
                f"re-run it")
        # What the swap replaced: no reader of the new head reads it.
        replaced = head["days"].get(run_date)
        if replaced:
            self._delete(f"P#{program_id}#A", f"{run_date}#{replaced}#")
        if head["members"]:
            self._delete(f"P#{program_id}#M#{head['members']}")
        return changes.height

    def _swap(self, program_id: str, head: dict, days: dict[str, str], members_gen: str) -> bool:
        """Point the head at the day's new audit rows and the new members, if no one moved it since `head`."""
        condition = ("attribute_not_exists(pk)" if head["version"] == 0 else "version = :v")
        try:
            self.client().put_item(
                TableName=self.table_name,
                Item={"pk": {"S": f"P#{program_id}"}, "sk": {"S": HEAD}, "version": {"N": str(head["version"] + 1)},
                      "days": {"M": {d: {"S": g} for d, g in days.items()}}, "members": {"S": members_gen}},
                ConditionExpression=condition,
                **({"ExpressionAttributeValues": {":v": {"N": str(head["version"])}}} if head["version"] else {}))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def check(self) -> None:
        """The table exists (the preflight)."""
        self.client().describe_table(TableName=self.table_name)
