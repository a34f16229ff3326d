"""The delivery ledger on DynamoDB: every state change is a conditional write on one item, so two
senders never claim the same request and a settle only moves a request that is in flight."""
from __future__ import annotations

import time
from typing import Iterable

import polars as pl

from music_feedback.feedback.dynamodb import codec
from music_feedback.feedback.dynamodb.client import conditional, conditional_many, parallel, query
from music_feedback.feedback.dynamodb.table import SHARDS, ledger_key, ledger_pk, shard
from music_feedback.feedback.port import (CONTACTED, LEDGER_SCHEMA, Cap, LedgerKey, check_planned, check_resolved,
                                          check_settled)

LEDGER_COLS = tuple(LEDGER_SCHEMA)
GUARD_ATTEMPTS = 20  # a listener's concurrent prompts, each retried after another took the guard
GUARD_MEMORY_S = 86_400.0  # how long the guard lists a contact: far past the index's propagation delay


def ledger_item(program_id: str, row: dict, extra: dict) -> dict:
    lid, tid = int(row["listener_id"]), int(row["track_id"])
    day, channel = row["batch_date"], row["channel"]
    values = {**{c: row.get(c) for c in LEDGER_COLS}, "program_id": program_id, **extra,
              "G1PK": f"L#{lid}", "G1SK": f"{program_id}#{tid}#{day}#{channel}"}
    if values.get("contacted_at") is not None:
        values.update(G2PK=f"C#{program_id}#{shard(lid)}", G2SK=values["contacted_at"])
    return {**ledger_key(program_id, day, channel, lid, tid), **codec.item(values)}


class Ledger:
    """Mixed into the store: needs self.client(), self.table_name, self.writers."""

    def _days(self, program_id: str) -> list[tuple[str, str]]:
        got = self.client().get_item(TableName=self.table_name, Key={"PK": {"S": f"DAYS#{program_id}"},
                                                                     "SK": {"S": "D"}}, ConsistentRead=True)
        return sorted(tuple(v.split("#", 1)) for v in got.get("Item", {}).get("days", {}).get("SS", []))

    def _note_days(self, program_id: str, pairs: set[tuple[str, str]]) -> None:
        if pairs:
            self.client().update_item(
                TableName=self.table_name, Key={"PK": {"S": f"DAYS#{program_id}"}, "SK": {"S": "D"}},
                UpdateExpression="ADD days :d", ExpressionAttributeValues={":d": {"SS": [f"{d}#{c}" for d, c in pairs]}})

    def _ledger_items(self, program_id: str, day: str, channel: str, filter_expr: str | None = None,
                      values: dict | None = None, names: dict | None = None,
                      columns: tuple[str, ...] | None = None) -> list[dict]:
        """A day's ledger items, its shards read in parallel; `columns`: only those attributes (a day holds
        some 90,000 items, read several times by a day's email)."""
        names = dict(names or {})
        projection = None
        if columns:
            projection = ", ".join(f"#p{i}" for i in range(len(columns)))
            names.update({f"#p{i}": c for i, c in enumerate(columns)})

        def one(s: int) -> list[dict]:
            kw = {"TableName": self.table_name, "KeyConditionExpression": "PK = :pk",
                  "ExpressionAttributeValues": {":pk": {"S": ledger_pk(program_id, day, channel, s)}, **(values or {})},
                  "ConsistentRead": True}
            if filter_expr:
                kw["FilterExpression"] = filter_expr
            if projection:
                kw["ProjectionExpression"] = projection
            if names:
                kw["ExpressionAttributeNames"] = names
            return [codec.plain(i) for i in query(self.client(), **kw)]
        return [r for part in parallel(one, range(SHARDS), self.writers) for r in part]

    def plan(self, program_id: str, rows: pl.DataFrame) -> int:
        df = check_planned(rows)
        self._note_days(program_id, set(df.select("batch_date", "channel").unique().iter_rows()))
        now = time.time()

        # A row already planned keeps its state: never resent.
        writes = [("Put", {"TableName": self.table_name, "ConditionExpression": "attribute_not_exists(PK)",
                           "Item": ledger_item(program_id, row, {"attempts": 0, "updated_at": now})})
                  for row in df.unique(["batch_date", "channel", "listener_id", "track_id"]).iter_rows(named=True)]
        return sum(conditional_many(self.client(), writes, self.writers))

    def due(self, program_id: str, batch_date: str, channel: str, marketplace: str | None = None) -> pl.DataFrame:
        expr, values = "#s IN (:p, :g)", {":p": {"S": "pending"}, ":g": {"S": "sending"}}
        if marketplace is not None:
            expr += " AND marketplace = :m"
            values[":m"] = {"S": marketplace}
        schema = {**LEDGER_SCHEMA, "attempts": pl.Int64, "message_id": pl.Utf8}
        rows = self._ledger_items(program_id, batch_date, channel, expr, values, {"#s": "state"}, tuple(schema))
        frame = pl.DataFrame([{c: r.get(c) for c in schema} for r in rows], schema=schema, orient="row")
        return frame.sort(["campaign", "score", "listener_id", "track_id"], descending=[False, True, False, False],
                          nulls_last=False)

    def _key(self, program_id, batch_date, channel, k: LedgerKey) -> dict:
        return ledger_key(program_id, batch_date, channel, k[0], k[1])

    def claim(self, program_id: str, batch_date: str, channel: str, keys: Iterable[LedgerKey], now: float
              ) -> list[LedgerKey]:
        def one(k: LedgerKey) -> tuple[str, dict]:
            return ("Update", dict(
                TableName=self.table_name, Key=self._key(program_id, batch_date, channel, k),
                UpdateExpression="SET #s = :sending, attempts = if_not_exists(attempts, :zero) + :one, "
                                 "updated_at = :now, contacted_at = :now, G2PK = :g2, G2SK = :now",
                ConditionExpression="#s = :pending", ExpressionAttributeNames={"#s": "state"},
                ExpressionAttributeValues={":sending": {"S": "sending"}, ":pending": {"S": "pending"},
                                           ":zero": {"N": "0"}, ":one": {"N": "1"}, ":now": codec.value(now),
                                           ":g2": {"S": f"C#{program_id}#{shard(k[0])}"}}))
        keys = list(dict.fromkeys(tuple(k) for k in keys))
        return [k for k, ok in zip(keys, conditional_many(self.client(), [one(k) for k in keys], self.writers)) if ok]

    def settle(self, program_id: str, batch_date: str, channel: str,
               outcomes: Iterable[tuple[LedgerKey, str, str, str | None]], now: float) -> int:
        outcomes = check_settled(outcomes)

        def one(outcome) -> tuple[str, dict]:
            k, state, reason, mid = outcome
            sets = ["#s = :state", "updated_at = :now"]
            values = {":state": {"S": state}, ":now": codec.value(now), ":sending": {"S": "sending"}}
            removes = []
            for name, v in (("reason", reason or None), ("message_id", mid)):
                if v is not None:
                    sets.append(f"{name} = :{name}")
                    values[f":{name}"] = {"S": v}
                elif name == "reason":
                    removes.append("reason")
            if state == "sent":
                sets += ["contacted_at = :now", "G2SK = :now"]
            elif state == "unknown":  # may have been delivered: still the contact its claim made
                pass
            else:  # a retry or a failure is no contact
                removes += ["contacted_at", "G2PK", "G2SK"]
            expr = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
            return ("Update", dict(TableName=self.table_name, Key=self._key(program_id, batch_date, channel, k),
                                   UpdateExpression=expr, ConditionExpression="#s = :sending",
                                   ExpressionAttributeNames={"#s": "state"}, ExpressionAttributeValues=values))
        latest = {tuple(o[0]): o for o in outcomes}  # one write per request in a transaction
        return sum(conditional_many(self.client(), [one(o) for o in latest.values()], self.writers))

    def unknown(self, program_id: str, batch_date: str, channel: str) -> pl.DataFrame:
        schema = {"listener_id": pl.Int64, "track_id": pl.Int64, "marketplace": pl.Utf8, "message_id": pl.Utf8,
                  "updated_at": pl.Float64}
        rows = self._ledger_items(program_id, batch_date, channel, "#s = :u", {":u": {"S": "unknown"}},
                                  {"#s": "state"}, tuple(schema))
        frame = pl.DataFrame([{c: r.get(c) for c in schema} for r in rows], schema=schema, orient="row")
        return frame.sort(["listener_id", "track_id"])

    def resolve(self, program_id: str, batch_date: str, channel: str,
                outcomes: Iterable[tuple[LedgerKey, str, str]], now: float) -> int:
        outcomes = check_resolved(outcomes)

        def one(outcome) -> tuple[str, dict]:
            k, state, reason = outcome
            values = {":state": {"S": state}, ":now": codec.value(now), ":unknown": {"S": "unknown"}}
            sets, removes = ["#s = :state", "updated_at = :now"], []
            if reason:
                sets.append("reason = :reason")
                values[":reason"] = {"S": reason}
            else:
                removes.append("reason")
            if state != "sent":  # not taken, or refused: no contact
                removes += ["contacted_at", "G2PK", "G2SK"]
            expr = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
            return ("Update", dict(TableName=self.table_name, Key=self._key(program_id, batch_date, channel, k),
                                   UpdateExpression=expr, ConditionExpression="#s = :unknown",
                                   ExpressionAttributeNames={"#s": "state"}, ExpressionAttributeValues=values))
        latest = {tuple(o[0]): o for o in outcomes}
        return sum(conditional_many(self.client(), [one(o) for o in latest.values()], self.writers))

    def expire(self, program_id: str, batch_date: str, channel: str, keys: Iterable[LedgerKey], reason: str,
               now: float, state: str = "expired") -> int:
        def one(k: LedgerKey) -> bool:
            return self._set_state(self._key(program_id, batch_date, channel, k), state, reason, now,
                                   ("pending", "sending"))
        return sum(parallel(one, [tuple(k) for k in keys], self.writers))

    def _set_state(self, key: dict, state: str, reason: str, now: float, when: tuple[str, ...]) -> bool:
        values = {":state": {"S": state}, ":reason": {"S": reason}, ":now": codec.value(now)}
        values.update({f":w{i}": {"S": w} for i, w in enumerate(when)})
        return conditional(self.client(), TableName=self.table_name, Key=key,
                           UpdateExpression="SET #s = :state, reason = :reason, updated_at = :now",
                           ConditionExpression=f"#s IN ({', '.join(f':w{i}' for i in range(len(when)))})",
                           ExpressionAttributeNames={"#s": "state"}, ExpressionAttributeValues=values)

    def record_contact(self, program_id: str, batch_date: str, channel: str, row: dict, state: str,
                       now: float, cap: Cap | None = None) -> str | None:
        if state not in ("sent", "held_out"):
            raise ValueError(f"a contact is recorded as sent or held_out, not {state!r}")
        values = {**{c: row.get(c) for c in LEDGER_COLS}, "batch_date": batch_date, "channel": channel,
                  "state": state}
        self._note_days(program_id, {(batch_date, channel)})
        item = ledger_item(program_id, values, {"attempts": 1, "updated_at": now,
                                                 "contacted_at": now if state == "sent" else None})
        if cap is None:
            conditional(self.client(), TableName=self.table_name, ConditionExpression="attribute_not_exists(PK)",
                        Item=item)
        elif not self._capped_put(program_id, int(row["listener_id"]), item, now, cap):
            return None
        return self.ledger_row(program_id, batch_date, row["listener_id"], row["track_id"], channel)["state"]

    def _capped_put(self, program_id: str, listener_id: int, item: dict, now: float, cap: Cap) -> bool:
        """Put a new ledger item only while the listener is under the cap: one transaction with the
        listener's contact guard, whose version the write moves on, so a concurrent prompt's write fails
        and counts again. The guard also lists the last day's contacts it admitted, which the eventually
        consistent ByListener index may not show yet. False: the cap refused it."""
        limit, since, until = cap
        guard_key = {"PK": {"S": f"CONTACTS#{program_id}#{listener_id}"}, "SK": {"S": "G"}}
        me = item["G1SK"]["S"]
        for _ in range(GUARD_ATTEMPTS):
            got = self.client().get_item(TableName=self.table_name, Key=guard_key, ConsistentRead=True)
            guard = codec.plain(got["Item"]) if "Item" in got else {}
            version, recent = int(guard.get("v", 0)), {k: float(t) for k, t in guard.get("recent", {}).items()}
            indexed = self._contact_keys(program_id, listener_id, since, until)
            if me in indexed:
                return True  # its own contact: the put below would find it anyway
            seen = indexed | {k for k, t in recent.items() if since <= t < until}
            if len(seen) >= limit:
                return False
            recent = {k: t for k, t in recent.items() if abs(t - now) < GUARD_MEMORY_S}
            recent[me] = now
            try:
                self.client().transact_write_items(TransactItems=[
                    {"Put": {"TableName": self.table_name, "Item": {
                        **guard_key, "v": {"N": str(version + 1)},
                        "recent": {"M": {k: {"N": repr(t)} for k, t in recent.items()}}},
                        "ConditionExpression": "attribute_not_exists(v) OR v = :v",
                        "ExpressionAttributeValues": {":v": {"N": str(version)}}}},
                    {"Put": {"TableName": self.table_name, "Item": item,
                             "ConditionExpression": "attribute_not_exists(PK)"}}])
                return True
            except self.client().exceptions.TransactionCanceledException as exc:
                reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
                if len(reasons) > 1 and reasons[1] == "ConditionalCheckFailed":
                    return True  # the pair's row exists: the caller reads its state
        raise RuntimeError(f"listener {listener_id}'s contact guard kept changing over {GUARD_ATTEMPTS} attempts")

    def _contact_rows(self, pk_expr: str, values: dict, index: str, since: float, until: float,
                      projection: str = "listener_id") -> list[dict]:
        values = {**values, ":since": codec.value(since), ":until": codec.value(until),
                  **{f":c{i}": {"S": s} for i, s in enumerate(CONTACTED)}}
        states = ", ".join(f":c{i}" for i in range(len(CONTACTED)))
        return [codec.plain(i) for i in query(
            self.client(), TableName=self.table_name, IndexName=index, KeyConditionExpression=pk_expr,
            FilterExpression=f"contacted_at >= :since AND contacted_at < :until AND #s IN ({states})",
            ExpressionAttributeNames={"#s": "state"}, ExpressionAttributeValues=values,
            ProjectionExpression=projection)]

    def contacts(self, program_id: str, since: float, until: float) -> pl.DataFrame:
        rows = []
        for s in range(SHARDS):
            rows += self._contact_rows("G2PK = :pk AND G2SK >= :since", {":pk": {"S": f"C#{program_id}#{s}"}},
                                       "ByProgram", since, until)
        frame = pl.DataFrame(rows, schema={"listener_id": pl.Int64})
        return frame.group_by("listener_id").agg(pl.len().cast(pl.Int64).alias("requests"))

    def contacts_of(self, program_id: str, listener_id: int, since: float, until: float) -> int:
        return len(self._contact_keys(program_id, listener_id, since, until))

    def contacts_among(self, program_id: str, listener_ids: Iterable[int], since: float, until: float
                       ) -> dict[int, int]:
        ids = sorted(set(int(i) for i in listener_ids))
        return dict(zip(ids, parallel(lambda lid: self.contacts_of(program_id, lid, since, until), ids,
                                      self.writers)))

    def _contact_keys(self, program_id: str, listener_id: int, since: float, until: float) -> set[str]:
        """The listener's contacts in [since, until), each as its ByListener sort key."""
        return {r["G1SK"] for r in self._contact_rows(
            "G1PK = :pk AND begins_with(G1SK, :p)", {":pk": {"S": f"L#{listener_id}"}, ":p": {"S": f"{program_id}#"}},
            "ByListener", since, until, projection="G1SK")}

    def ledger_counts(self, program_id: str, batch_date: str | None = None, channel: str | None = None
                      ) -> dict[str, int]:
        counts: dict[str, int] = {}
        for day, ch in self._days(program_id):
            if (batch_date is None or day == batch_date) and (channel is None or ch == channel):
                for r in self._ledger_items(program_id, day, ch, columns=("state",)):
                    counts[r["state"]] = counts.get(r["state"], 0) + 1
        return dict(sorted(counts.items()))

    def ledger_frame(self, program_id: str, batch_date: str) -> pl.DataFrame:
        schema = {"listener_id": pl.Int64, "track_id": pl.Int64, "channel": pl.Utf8, "marketplace": pl.Utf8,
                  "genre": pl.Utf8, "state": pl.Utf8, "score": pl.Float64}
        rows = [r for day, ch in self._days(program_id) if day == batch_date
                for r in self._ledger_items(program_id, day, ch, columns=tuple(schema))]
        return pl.DataFrame([{c: r.get(c) for c in schema} for r in rows], schema=schema, orient="row")

    def ledger_row(self, program_id: str, batch_date: str, listener_id: int, track_id: int, channel: str
                   ) -> dict | None:
        got = self.client().get_item(TableName=self.table_name, ConsistentRead=True,
                                     Key=ledger_key(program_id, batch_date, channel, listener_id, track_id))
        if "Item" not in got:
            return None
        row = codec.plain(got["Item"])
        keep = (*LEDGER_COLS, "program_id", "attempts", "reason", "message_id", "updated_at", "contacted_at",
                "answered_at")
        return {c: row.get(c) for c in keep}
