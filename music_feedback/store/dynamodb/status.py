"""Delivery status updates: one conditional update per row, each judged on its own condition, sent as
transactions of up to 100 updates (a day's email marks some 85,000 rows sent: one round trip per 100
instead of per row). When a condition fails the transaction is refused whole and its updates go again
one by one, so the count is exact. The transactions of one call go one after another: callers with many
rows are already on several threads (the email's senders), and moto's server loses updates when
transactions on one table overlap."""
from __future__ import annotations

from typing import Iterable

from music_feedback.store.dynamodb import keys

TRANSACTION_ITEMS = 100  # DynamoDB's limit per TransactWriteItems


def set_status(client, table: str, program_id: str, batch_date: str, rows: Iterable[tuple[int, int, str]],
               status: str, expected: str | None) -> int:
    cond = "attribute_exists(PK)" + (" AND #s = :e" if expected is not None else "")
    values = {":v": {"S": status}, **({":e": {"S": expected}} if expected is not None else {})}

    def update(row: tuple[int, int, str]) -> dict:
        lid, tid, ch = row
        key = {"PK": {"S": keys.pk(lid, program_id)}, "SK": {"S": keys.sk(batch_date, tid, ch)}}
        return dict(TableName=table, Key=key, UpdateExpression="SET #s = :v", ConditionExpression=cond,
                    ExpressionAttributeNames={"#s": "status"}, ExpressionAttributeValues=values)

    def one(kw: dict) -> bool:
        try:
            client.update_item(**kw)
            return True
        except client.exceptions.ConditionalCheckFailedException:
            return False

    def chunk(part: list[dict]) -> int:
        if len(part) == 1:
            return int(one(part[0]))
        try:
            client.transact_write_items(TransactItems=[{"Update": kw} for kw in part])
            return len(part)
        except client.exceptions.TransactionCanceledException:
            return sum(one(kw) for kw in part)

    # A transaction names each item once; a repeated row would be refused, and changes nothing more anyway.
    updates = [update(r) for r in dict.fromkeys(tuple(r) for r in rows)]
    parts = [updates[i:i + TRANSACTION_ITEMS] for i in range(0, len(updates), TRANSACTION_ITEMS)]
    return sum(map(chunk, parts))
