"""Answers, suppressions and the event outbox on DynamoDB. A submission is one TransactWriteItems: the
submission id, the answer, the track's tally, the answered request, the cancelled requests of the pair on
other channels, the outbox event, and a check that the listener has not opted out; if anything changed
under it, the transaction is refused whole and the submission is evaluated again."""
from __future__ import annotations

import hashlib
import json
from typing import Iterable

import polars as pl

from music_feedback.feedback.dynamodb import codec
from music_feedback.feedback.dynamodb.client import conditional, parallel, query
from music_feedback.feedback.dynamodb.table import OUTBOX_SHARDS, SHARDS, ledger_key, shard
from music_feedback.feedback.port import OptedOutError, Submission, SubmissionConflict, SubmitResult

FEEDBACK_COLS = ("program_id", "listener_id", "track_id", "rating", "comment", "tags", "channel", "batch_date",
                 "submission_id", "delivered_at", "first_submitted_at", "submitted_at", "revisions")
ATTEMPTS = 6


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


def _event_key(event_id: int) -> dict:
    return {"PK": {"S": f"EVENT#{event_id}"}, "SK": {"S": "E"}}


class Answers:
    """Mixed into the store: needs self.client(), self.table_name, self.writers."""

    def _get(self, key: dict) -> dict | None:
        got = self.client().get_item(TableName=self.table_name, Key=key, ConsistentRead=True)
        return codec.plain(got["Item"]) if "Item" in got else None

    def _next_ids(self, n: int = 1) -> list[int]:
        got = self.client().update_item(
            TableName=self.table_name, Key={"PK": {"S": "COUNTER"}, "SK": {"S": "EVENT"}},
            UpdateExpression="ADD n :n", ExpressionAttributeValues={":n": {"N": str(n)}}, ReturnValues="UPDATED_NEW")
        last = int(got["Attributes"]["n"]["N"])
        return list(range(last - n + 1, last + 1))

    def _event_item(self, event_id: int, program_id: str, kind: str, detail: dict, now: float) -> dict:
        return {**_event_key(event_id), **codec.item({
            "id": event_id, "program_id": program_id, "kind": kind, "detail": json.dumps(detail), "created_at": now,
            "G2PK": f"EVP#{program_id}", "G2SK": event_id, "G3PK": f"UNPUB#{event_id % OUTBOX_SHARDS}",
            "G3SK": event_id})}

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
        delivered = old["delivered_at"] if old else (request or {}).get("contacted_at")
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
        event_id = self._next_ids()[0]
        items = [
            {"ConditionCheck": {"TableName": t, "Key": _suppression_key(sub.listener_id),
                                "ConditionExpression": "attribute_not_exists(PK)"}},
            {"Put": {"TableName": t, "Item": {**_submission_key(sub), **codec.item({"fingerprint": fingerprint(sub)})},
                     "ConditionExpression": "attribute_not_exists(PK)"}},
            {"Put": {"TableName": t, "Item": {**_fb_key(sub.program_id, sub.listener_id, sub.track_id),
                                               **codec.item(answer)}, **guard}},
            {"Update": {"TableName": t, "Key": {"PK": {"S": f"TM#{sub.program_id}#{sub.track_id}"}, "SK": {"S": "M"}},
                        "UpdateExpression": "ADD thumbs_up :u, thumbs_down :d, responses :n SET updated_at = :t",
                        "ExpressionAttributeValues": {":u": {"N": str(up)}, ":d": {"N": str(down)},
                                                      ":n": {"N": str(int(old is None))},
                                                      ":t": codec.value(sub.submitted_at)}}},
            {"Put": {"TableName": t, "Item": self._event_item(
                event_id, sub.program_id, "feedback.updated" if old else "feedback.submitted",
                {k: new[k] for k in FEEDBACK_COLS}, sub.submitted_at)}},
        ]
        if request is not None:
            items.append({"Update": {
                "TableName": t, "Key": ledger_key(sub.program_id, sub.batch_date, sub.channel, sub.listener_id,
                                                  sub.track_id),
                "UpdateExpression": "SET answered_at = if_not_exists(answered_at, :t), updated_at = :t",
                "ExpressionAttributeValues": {":t": codec.value(sub.submitted_at)}}})
        for row in self._pending_of_pair(sub):  # the pair's requests still pending anywhere are cancelled
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
        row = self._get({"PK": {"S": f"TM#{program_id}#{track_id}"}, "SK": {"S": "M"}}) or {}
        return {k: int(row.get(k, 0)) for k in ("thumbs_up", "thumbs_down", "responses")}

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
        self.client().put_item(TableName=self.table_name,
                               Item=self._event_item(self._next_ids()[0], program_id, kind, detail, now))

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

    def _program_events(self, program_id: str, after_id: int = 0) -> Iterable[dict]:
        return (codec.plain(i) for i in query(
            self.client(), TableName=self.table_name, IndexName="ByProgram",
            KeyConditionExpression="G2PK = :pk AND G2SK > :after",
            ExpressionAttributeValues={":pk": {"S": f"EVP#{program_id}"}, ":after": {"N": str(int(after_id))}}))

    def events_since(self, program_id: str, kind_prefix: str, after_id: int) -> tuple[int, int]:
        ids = [r["id"] for r in self._program_events(program_id, after_id) if r["kind"].startswith(kind_prefix)]
        return len(ids), max(ids, default=after_id)

    def events(self, program_id: str, kind: str | None = None) -> list[dict]:
        return [self._event(r) for r in self._program_events(program_id)
                if kind is None or r["kind"] == kind]
