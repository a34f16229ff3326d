"""Moves a feedback table's events written before events were indexed by day (G2 `EVP#<program>`, no `ttl`)
to the day-sharded index, with their expiry, and records their days. Run once after upgrading (it is
idempotent; events already moved are skipped):

    python -m music_feedback.feedback.dynamodb.migrate [--table music-feedback-feedback] [--endpoint URL]

Until it has run, reads of events (the funnel, the playlist sensor's count, `events`) do not see the earlier
events; answers, tallies and the ledger need nothing (a track's unsharded tally is summed with its shards).
It scans the table once (Scan with a filter on `EVENT#` items)."""
from __future__ import annotations

import argparse
import json
import os
import sys

from music_feedback.feedback.dynamodb import codec
from music_feedback.feedback.dynamodb.answers import event_day, event_shard
from music_feedback.feedback.dynamodb.store import DynamoDBFeedbackStore
from music_feedback.feedback.dynamodb.table import TTL_ATTRIBUTE, event_index_pk


def migrate_events(store: DynamoDBFeedbackStore) -> int:
    """Re-index every event of the earlier layout; returns how many moved."""
    client, kw, moved = store.client(), {
        "TableName": store.table_name, "FilterExpression": "begins_with(PK, :e) AND begins_with(G2PK, :old)",
        "ExpressionAttributeValues": {":e": {"S": "EVENT#"}, ":old": {"S": "EVP#"}}}, 0
    while True:
        page = client.scan(**kw)
        for item in page.get("Items", []):
            row = codec.plain(item)
            day = event_day(float(row["created_at"]))
            s = event_shard(json.loads(row["detail"]))
            store._note_event_day(row["program_id"], day)
            client.update_item(
                TableName=store.table_name, Key={"PK": item["PK"], "SK": item["SK"]},
                UpdateExpression="SET G2PK = :pk, #t = if_not_exists(#t, :ttl)", ConditionExpression="G2PK = :old",
                ExpressionAttributeNames={"#t": TTL_ATTRIBUTE},
                ExpressionAttributeValues={":pk": {"S": event_index_pk(row["program_id"], day, s)},
                                           ":old": item["G2PK"],
                                           ":ttl": {"N": str(int(row["created_at"] + store.event_retention_days * 86_400))}})
            moved += 1
        if "LastEvaluatedKey" not in page:
            return moved
        kw["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", default=os.environ.get("MUSIC_FEEDBACK_FEEDBACK_TABLE", "music-feedback-feedback"))
    parser.add_argument("--endpoint", default=None, help="DynamoDB endpoint (default: boto3's own)")
    args = parser.parse_args(argv)
    store = DynamoDBFeedbackStore.from_env().model_copy(update={"table_name": args.table,
                                                               **({"endpoint_url": args.endpoint} if args.endpoint else {})})
    print(f"moved {migrate_events(store)} event(s) of {args.table} to the day-sharded index")
    return 0


if __name__ == "__main__":
    sys.exit(main())
