"""Answers, suppressions and the event outbox on DynamoDB. A submission is one TransactWriteItems: the
submission id, the answer, the track's tally, the answered request, the cancelled requests of the pair on
other channels, the outbox event, and a check that the listener has not opted out; if anything changed
under it, the transaction is refused whole and the submission is evaluated again."""
from __future__ import annotations

import hashlib
import json
import random
import threading
from datetime import datetime, timezone
from typing import Iterable

import polars as pl

from music_feedback.feedback.dynamodb import codec
from music_feedback.feedback.dynamodb.client import conditional, parallel, query
from music_feedback.feedback.dynamodb.table import (
    OUTBOX_SHARDS, SHARDS, TTL_ATTRIBUTE, event_index_pk, ledger_key, shard)
from music_feedback.feedback.port import OptedOutError, Submission, SubmissionConflict, SubmitResult

FEEDBACK_COLS = ("program_id", "listener_id", "track_id", "rating", "comment", "tags", "channel", "batch_date",
                 "submission_id", "delivered_at", "first_submitted_at", "submitted_at", "revisions")
ATTEMPTS = 6
ID_SHIFT, SHARD_SHIFT = 20, 16  # an event id: ms << 20 | shard << 16 | 16 random bits
_noted: set[tuple] = set()  # (table, program, day) whose event day is recorded, in this process
_noted_lock = threading.Lock()


def event_day(ts: float) -> str:
    return datetime.fromtimestamp(max(0.0, ts), timezone.utc).strftime("%Y-%m-%d")


def new_event_id(now: float, s: int) -> int:
    return (int(round(max(0.0, now) * 1000)) << ID_SHIFT) | (s << SHARD_SHIFT) | random.getrandbits(SHARD_SHIFT)


def id_time(event_id: int) -> float:
    """The time an event id was made at (an id of the earlier counter: 1970)."""
    return (int(event_id) >> ID_SHIFT) / 1000


def event_shard(detail: dict) -> int:
    """The listener's shard when the event names one, else any: spreads a program's events over SHARDS."""
    lid = detail.get("listener_id") if isinstance(detail, dict) else None
    return shard(lid) if isinstance(lid, int) else random.randrange(SHARDS)


def fingerprint(sub: Submission) -> str:
    return hashlib.sha256(json.dumps([sub.program_id, sub.listener_id, sub.track_id, sub.rating, sub.comment,
                                      sorted(sub.tags)]).encode()).hexdigest()


def _answer_fingerprint(answer: dict) -> str:
    """The fingerprint of the submission that made a stored answer."""
    tags = answer["tags"]
    return fingerprint(Submission(answer["program_id"], int(answer["listener_id"]), int(answer["track_id"]),
                                  int(answer["rating"]), answer["channel"], answer["batch_date"],
                                  answer["submission_id"], 0.0, answer["comment"],
                                  tuple(json.loads(tags) if isinstance(tags, str) else tags)))


def _submission_key(sub: Submission) -> dict:
    """A submission id is the client's, unique per (program, listener): another listener's same id is theirs.
    (Items written before had the key SUB#{id}; they are left as they are and no longer read.)"""
    return {"PK": {"S": f"SUB#{sub.program_id}#{sub.listener_id}#{sub.submission_id}"}, "SK": {"S": "S"}}


def _fb_key(program_id: str, listener_id: int, track_id: int) -> dict:
    return {"PK": {"S": f"FB#{program_id}#{listener_id}#{track_id}"}, "SK": {"S": "A"}}


def _suppression_key(listener_id: int) -> dict:
    return {"PK": {"S": f"SUPPRESSED#{shard(listener_id)}"}, "SK": {"S": str(int(listener_id))}}


def _tally_key(program_id: str, track_id: int, s: int | None) -> dict:
    """A track's tally: one shard per listener shard (None: the unsharded item of earlier answers)."""
    suffix = "" if s is None else f"#{s}"
    return {"PK": {"S": f"TM#{program_id}#{track_id}{suffix}"}, "SK": {"S": "M"}}


def _event_key(event_id: int) -> dict:
    return {"PK": {"S": f"EVENT#{event_id}"}, "SK": {"S": "E"}}


class Answers:
    """Mixed into the store: needs self.client(), self.table_name, self.writers."""

    def _get(self, key: dict) -> dict | None:
        got = self.client().get_item(TableName=self.table_name, Key=key, ConsistentRead=True)
        return codec.plain(got["Item"]) if "Item" in got else None

    def _note_event_day(self, program_id: str, day: str) -> None:
        """Record that `day` holds events of the program: one write per process and day, not per event."""
        k = (self.table_name, program_id, day)
        if k in _noted:
            return
        self.client().update_item(
            TableName=self.table_name, Key={"PK": {"S": f"EVDAYS#{program_id}"}, "SK": {"S": "D"}},
            UpdateExpression="ADD days :d", ExpressionAttributeValues={":d": {"SS": [day]}})
        with _noted_lock:
            _noted.add(k)

    def _event_days(self, program_id: str, since: float | None) -> list[str]:
        got = self.client().get_item(TableName=self.table_name, ConsistentRead=True,
                                     Key={"PK": {"S": f"EVDAYS#{program_id}"}, "SK": {"S": "D"}})
        days = sorted(got.get("Item", {}).get("days", {}).get("SS", []))
        first = event_day(since) if since is not None else ""
        return [d for d in days if d >= first]

    def _event_item(self, program_id: str, kind: str, detail: dict, now: float) -> dict:
        """A new event (its id drawn from its time and shard), indexed under its UTC day and shard, with its
        expiry; the caller writes it only where no item has its id."""
        s, day = event_shard(detail), event_day(now)
        event_id = new_event_id(now, s)
        self._note_event_day(program_id, day)
        return {**_event_key(event_id), **codec.item({
            "id": event_id, "program_id": program_id, "kind": kind, "detail": json.dumps(detail), "created_at": now,
            TTL_ATTRIBUTE: int(now + self.event_retention_days * 86_400),
            "G2PK": event_index_pk(program_id, day, s), "G2SK": event_id,
            "G3PK": f"UNPUB#{event_id % OUTBOX_SHARDS}", "G3SK": event_id})}

    # --- answers -------------------------------------------------------------------------------
    def submit(self, sub: Submission) -> SubmitResult:
        c = self.client()
        for _ in range(ATTEMPTS):
            if self._get(_suppression_key(sub.listener_id)):
                raise OptedOutError(f"listener {sub.listener_id} has opted out; no feedback is stored")
            seen = self._get(_submission_key(sub))
            old = self._get(_fb_key(sub.program_id, sub.listener_id, sub.track_id))
            if not seen and old and old["submission_id"] == sub.submission_id:
                seen = {"fingerprint": _answer_fingerprint(old)}  # the answer's own id: recorded before SUB# was scoped
            if seen:
                if seen["fingerprint"] != fingerprint(sub):
                    raise SubmissionConflict(f"submission id {sub.submission_id!r} was already used for a "
                                             "different answer: send a new id for a new answer")
                return SubmitResult("unchanged", self.feedback(sub.program_id, sub.listener_id, sub.track_id))
            request = self._get(ledger_key(sub.program_id, sub.batch_date, sub.channel, sub.listener_id, sub.track_id))
            day = old["batch_date"] if old else sub.batch_date
            joined = request if day == sub.batch_date else self._get(
                ledger_key(sub.program_id, day, sub.channel, sub.listener_id, sub.track_id))
            new = self._answer(sub, old, request, joined)
            items = self._transaction(sub, old, new, request)
            try:
                c.transact_write_items(TransactItems=items)
            except c.exceptions.TransactionCanceledException:
                continue  # something changed under it (a retry, an opt-out, a claim): evaluate it again
            return SubmitResult("updated" if old else "created", {k: new[k] for k in FEEDBACK_COLS})
        raise RuntimeError(f"submission {sub.submission_id}: the feedback table kept changing under it; retry")

    @staticmethod
    def _answer(sub: Submission, old: dict | None, request: dict | None, joined: dict | None) -> dict:
        first = old["first_submitted_at"] if old else sub.submitted_at
        delivered = old.get("delivered_at") if old else (request or {}).get("contacted_at")  # None: not stored
        return {"program_id": sub.program_id, "listener_id": sub.listener_id, "track_id": sub.track_id,
                "rating": sub.rating, "comment": sub.comment, "tags": sorted(sub.tags), "channel": sub.channel,
                "batch_date": old["batch_date"] if old else sub.batch_date, "submission_id": sub.submission_id,
                "delivered_at": delivered, "first_submitted_at": first, "submitted_at": sub.submitted_at,
                "revisions": (old["revisions"] + 1) if old else 1,
                # what `answers` reports of the request answered (the answer's day, its latest channel)
                **{c: (joined or {}).get(c) for c in ("marketplace", "genre", "track_name")}}

    def _transaction(self, sub: Submission, old: dict | None, new: dict, request: dict | None) -> list[dict]:
        t = self.table_name
        answer = {**new, "tags": json.dumps(new["tags"]), "G2PK": f"FBT#{sub.program_id}#{shard(sub.listener_id)}",
                  "G2SK": sub.submitted_at}
        guard = ({"ConditionExpression": "revisions = :r", "ExpressionAttributeValues": {":r": {"N": str(old["revisions"])}}}
                 if old else {"ConditionExpression": "attribute_not_exists(PK)"})
        up = (sub.rating > 0) - (old is not None and old["rating"] > 0)
        down = (sub.rating < 0) - (old is not None and old["rating"] < 0)
        items = [
            {"ConditionCheck": {"TableName": t, "Key": _suppression_key(sub.listener_id),
                                "ConditionExpression": "attribute_not_exists(PK)"}},
            {"Put": {"TableName": t, "Item": {**_submission_key(sub), **codec.item({"fingerprint": fingerprint(sub)})},
                     "ConditionExpression": "attribute_not_exists(PK)"}},
            {"Put": {"TableName": t, "Item": {**_fb_key(sub.program_id, sub.listener_id, sub.track_id),
                                               **codec.item(answer)}, **guard}},
            {"Update": {"TableName": t, "Key": _tally_key(sub.program_id, sub.track_id, shard(sub.listener_id)),
                        "UpdateExpression": "ADD thumbs_up :u, thumbs_down :d, responses :n SET updated_at = :t",
                        "ExpressionAttributeValues": {":u": {"N": str(up)}, ":d": {"N": str(down)},
                                                      ":n": {"N": str(int(old is None))},
                                                      ":t": codec.value(sub.submitted_at)}}},
            {"Put": {"TableName": t, "Item": self._event_item(
                sub.program_id, "feedback.updated" if old else "feedback.submitted",
                {k: new[k] for k in FEEDBACK_COLS}, sub.submitted_at),
                "ConditionExpression": "attribute_not_exists(PK)"}},
        ]
        answered = ledger_key(sub.program_id, sub.batch_date, sub.channel, sub.listener_id, sub.track_id)
        if request is not None:
            # One update of the answered request (a transaction names an item once): answered, and cancelled
            # as well if it was still pending; its state as read is the condition, or the answer is evaluated again.
            values = {":t": codec.value(sub.submitted_at), ":p": {"S": "pending"}}
            update = {"UpdateExpression": "SET answered_at = if_not_exists(answered_at, :t), updated_at = :t",
                      "ConditionExpression": "#s <> :p", "ExpressionAttributeNames": {"#s": "state"}}
            if request.get("state") == "pending":
                update = {"UpdateExpression": update["UpdateExpression"] + ", #s = :c, reason = :r",
                          "ConditionExpression": "#s = :p", "ExpressionAttributeNames": {"#s": "state"}}
                values.update({":c": {"S": "cancelled"}, ":r": {"S": f"answered on {sub.channel}"}})
            items.append({"Update": {"TableName": t, "Key": answered, "ExpressionAttributeValues": values, **update}})
        for row in self._pending_of_pair(sub):  # the pair's other requests still pending anywhere are cancelled
            if ledger_key(sub.program_id, row["batch_date"], row["channel"], sub.listener_id, sub.track_id) == answered:
                continue
            items.append({"Update": {
                "TableName": t, "Key": ledger_key(sub.program_id, row["batch_date"], row["channel"], sub.listener_id,
                                                  sub.track_id),
                "UpdateExpression": "SET #s = :c, reason = :r, updated_at = :t", "ConditionExpression": "#s = :p",
                "ExpressionAttributeNames": {"#s": "state"},
                "ExpressionAttributeValues": {":c": {"S": "cancelled"}, ":p": {"S": "pending"},
                                              ":r": {"S": f"answered on {sub.channel}"},
                                              ":t": codec.value(sub.submitted_at)}}})
        return items[:100]  # a transaction takes 100 items; a pair has a handful of requests

    def _pending_of_pair(self, sub: Submission) -> list[dict]:
        return [codec.plain(i) for i in query(
            self.client(), TableName=self.table_name, IndexName="ByListener",
            KeyConditionExpression="G1PK = :pk AND begins_with(G1SK, :p)", FilterExpression="#s = :pending",
            ExpressionAttributeNames={"#s": "state"},
            ExpressionAttributeValues={":pk": {"S": f"L#{sub.listener_id}"},
                                       ":p": {"S": f"{sub.program_id}#{sub.track_id}#"},
                                       ":pending": {"S": "pending"}})]

    def feedback(self, program_id: str, listener_id: int, track_id: int) -> dict | None:
        row = self._get(_fb_key(program_id, listener_id, track_id))
        if row is None:
            return None
        out = {c: row.get(c) for c in FEEDBACK_COLS}
        out["tags"] = json.loads(out["tags"])
        return out

    def _answers(self, program_id: str, until: float | None) -> list[dict]:
        rows = []
        for s in range(SHARDS):
            cond, values = "G2PK = :pk", {":pk": {"S": f"FBT#{program_id}#{s}"}}
            if until is not None:
                cond += " AND G2SK < :u"
                values[":u"] = codec.value(until)
            rows += [codec.plain(i) for i in query(self.client(), TableName=self.table_name, IndexName="ByProgram",
                                                   KeyConditionExpression=cond, ExpressionAttributeValues=values)]
        return rows

    def answered_pairs(self, program_id: str, until: float) -> pl.DataFrame:
        rows = [r for r in self._answers(program_id, None) if r["first_submitted_at"] < until]
        return pl.DataFrame([{"listener_id": r["listener_id"], "track_id": r["track_id"]} for r in rows],
                            schema={"listener_id": pl.Int64, "track_id": pl.Int64})

    def answers(self, program_id: str, until: float) -> pl.DataFrame:
        schema = {"listener_id": pl.Int64, "track_id": pl.Int64, "rating": pl.Int64, "submitted_at": pl.Float64,
                  "channel": pl.Utf8, "batch_date": pl.Utf8, "marketplace": pl.Utf8, "genre": pl.Utf8,
                  "track_name": pl.Utf8}
        rows = self._answers(program_id, until)
        return pl.DataFrame([{c: r.get(c) for c in schema} for r in rows], schema=schema, orient="row")

    def track_metrics(self, program_id: str, track_id: int) -> dict:
        """The sum of the track's tally shards (and of its unsharded item from before), one BatchGetItem."""
        request = {self.table_name: {"Keys": [_tally_key(program_id, track_id, s) for s in (*range(SHARDS), None)],
                                     "ConsistentRead": True}}
        out = {k: 0 for k in ("thumbs_up", "thumbs_down", "responses")}
        while request:
            got = self.client().batch_get_item(RequestItems=request)
            for item in got["Responses"].get(self.table_name, []):
                row = codec.plain(item)
                for k in out:
                    out[k] += int(row.get(k, 0))
            request = got.get("UnprocessedKeys") or None
        return out

    # --- opt-out and suppression ---------------------------------------------------------------
    def opt_out(self, listener_id: int, reason: str, now: float) -> bool:
        added = conditional(self.client(), TableName=self.table_name, ConditionExpression="attribute_not_exists(PK)",
                            Item={**_suppression_key(listener_id),
                                  **codec.item({"listener_id": int(listener_id), "reason": reason, "created_at": now})})
        if added:  # nothing more goes out to them, in any program
            pending = [codec.plain(i) for i in query(
                self.client(), TableName=self.table_name, IndexName="ByListener", KeyConditionExpression="G1PK = :pk",
                FilterExpression="#s = :p", ExpressionAttributeNames={"#s": "state"},
                ExpressionAttributeValues={":pk": {"S": f"L#{listener_id}"}, ":p": {"S": "pending"}})]
            for row in pending:
                self._set_state(ledger_key(row["program_id"], row["batch_date"], row["channel"], listener_id,
                                           row["track_id"]), "cancelled", "opted out", now, ("pending",))
        return added

    def suppressed(self, listener_ids: Iterable[int] | None = None) -> set[int]:
        c = self.client()
        if listener_ids is None:
            return {int(i["SK"]["S"]) for s in range(SHARDS) for i in query(
                c, TableName=self.table_name, KeyConditionExpression="PK = :pk",
                ExpressionAttributeValues={":pk": {"S": f"SUPPRESSED#{s}"}}, ProjectionExpression="SK")}
        keys = [_suppression_key(i) for i in dict.fromkeys(int(x) for x in listener_ids)]

        def batch(chunk: list[dict]) -> set[int]:
            found, request = set(), {self.table_name: {"Keys": chunk, "ProjectionExpression": "SK",
                                                       "ConsistentRead": True}}
            while request:
                got = c.batch_get_item(RequestItems=request)
                found |= {int(i["SK"]["S"]) for i in got["Responses"].get(self.table_name, [])}
                request = got.get("UnprocessedKeys") or None
            return found
        parts = parallel(batch, [keys[i:i + 100] for i in range(0, len(keys), 100)], self.writers)
        return set().union(*parts) if parts else set()

    # --- events --------------------------------------------------------------------------------
    def record_event(self, program_id: str, kind: str, detail: dict, now: float) -> None:
        for _ in range(ATTEMPTS):  # an id clash (same ms, shard and 16 random bits) draws again
            if conditional(self.client(), TableName=self.table_name, ConditionExpression="attribute_not_exists(PK)",
                           Item=self._event_item(program_id, kind, detail, now)):
                return
        raise RuntimeError(f"no free event id at {now} in {self.table_name}")

    @staticmethod
    def _event(row: dict) -> dict:
        return {"id": row["id"], "program_id": row["program_id"], "kind": row["kind"],
                "detail": json.loads(row["detail"]), "created_at": row["created_at"]}

    def unpublished_events(self, limit: int = 500) -> list[dict]:
        rows = []
        for s in range(OUTBOX_SHARDS):
            page = self.client().query(TableName=self.table_name, IndexName="Outbox", KeyConditionExpression="G3PK = :pk",
                                       ExpressionAttributeValues={":pk": {"S": f"UNPUB#{s}"}}, Limit=limit)
            rows += [codec.plain(i) for i in page.get("Items", [])]
        return [self._event(r) for r in sorted(rows, key=lambda r: r["id"])[:limit]]

    def mark_published(self, ids: Iterable[int], now: float) -> int:
        def one(event_id: int) -> bool:
            return conditional(self.client(), TableName=self.table_name, Key=_event_key(event_id),
                               UpdateExpression="SET published_at = :t REMOVE G3PK, G3SK",
                               ConditionExpression="attribute_exists(PK) AND attribute_not_exists(published_at)",
                               ExpressionAttributeValues={":t": codec.value(now)})
        return sum(parallel(one, list(ids), self.writers))

    def _program_events(self, program_id: str, since: float | None, after_id: int = 0,
                        kind: str | None = None, kind_prefix: str | None = None) -> list[dict]:
        """A program's events from the UTC day of `since` on: one Query per (day, shard) of the days that hold
        events, in parallel; never the program's whole history. Oldest first."""
        names, values, flt = {}, {":after": {"N": str(int(after_id))}}, None
        if kind is not None or kind_prefix is not None:
            names["#k"] = "kind"
            values[":k"] = {"S": kind if kind is not None else kind_prefix}
            flt = "#k = :k" if kind is not None else "begins_with(#k, :k)"

        def one(part: tuple[str, int]) -> list[dict]:
            kw = dict(TableName=self.table_name, IndexName="ByProgram",
                      KeyConditionExpression="G2PK = :pk AND G2SK > :after",
                      ExpressionAttributeValues={**values, ":pk": {"S": event_index_pk(program_id, *part)}})
            if flt:
                kw.update(FilterExpression=flt, ExpressionAttributeNames=names)
            return [codec.plain(i) for i in query(self.client(), **kw)]

        parts = [(d, s) for d in self._event_days(program_id, since) for s in range(SHARDS)]
        rows = [r for got in parallel(one, parts, self.writers) for r in got]
        return sorted(rows, key=lambda r: r["id"])

    def events_since(self, program_id: str, kind_prefix: str, after_id: int) -> tuple[int, int]:
        """Reads the days from the cursor's own (an id carries its time) to the last."""
        ids = [r["id"] for r in self._program_events(program_id, id_time(after_id), after_id,
                                                     kind_prefix=kind_prefix)]
        return len(ids), max(ids, default=after_id)

    def events(self, program_id: str, kind: str | None = None, since: float | None = None) -> list[dict]:
        return [self._event(r) for r in self._program_events(program_id, since, kind=kind)
                if since is None or r["created_at"] >= since]
