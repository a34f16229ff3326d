"""The feedback table: every kind of item in one table, keyed so each access pattern is one Query.

  ledger row   PK LEDGER#{program}#{date}#{channel}#{shard}  SK {listener}#{track}
               G1 L#{listener} / {program}#{track}#{date}#{channel}   (a listener's requests: cap, cancel)
               G2 C#{program}#{shard} / contacted_at                  (contacts in a window; sparse)
  contact guard PK CONTACTS#{program}#{listener}  SK G  (version and the last day's contacts: the
               voice prompt's cap check and write are one transaction with it)
  day index    PK DAYS#{program}  SK D  (the set of date#channel planned: the ledger's partitions)
  answer       PK FB#{program}#{listener}#{track}  SK A
               G2 FBT#{program}#{shard} / submitted_at                (a program's answers)
  submission   PK SUB#{program}#{listener}#{submission id}  SK S  (a client's ids are its listener's; items
               of the earlier SUB#{submission id} are no longer read)
  track tally  PK TM#{program}#{track}#{shard}  SK M   (a sharded counter: an answer adds to its listener's
               shard, a read sums the shards; the unsharded TM#{program}#{track} of earlier answers is summed too)
  suppression  PK SUPPRESSED#{shard}  SK {listener}
  event        PK EVENT#{id}  SK E   ttl: created_at + the retention (DynamoDB's TTL deletes it)
               G2 EV#{program}#{day}#{shard} / id                     (a program's events of a UTC day, by
                                                                      the day they were made: reads name days)
               G3 UNPUB#{shard} / id                                  (the outbox; removed when published)
  event days   PK EVDAYS#{program}  SK D  (the set of days holding events; written once a process a day)

An event id is its time: (created_at in ms) << 20 | shard << 16 | 16 random bits, written only where no
item has it (a clash is drawn again), so no counter item takes every event's write. Ids order events by
time; two in one millisecond are in no set order. (Events of the earlier layout, G2 EVP#{program} and ids
from the COUNTER item, are not read: `python -m music_feedback.feedback.dynamodb.migrate` re-indexes them.)

The indexes are G1 = ByListener, G2 = ByProgram (numeric sort key), G3 = Outbox (sparse).

The ledger and the program-wide indexes are sharded by crc32 of the listener: 100,000 requests a day on
one key would pass a partition's 1,000 writes a second.
"""
from __future__ import annotations

import zlib

SHARDS = 8
OUTBOX_SHARDS = 4
TTL_ATTRIBUTE = "ttl"  # epoch seconds; only event items carry it
# Index name -> the prefix of its key attributes (G1PK/G1SK ...).
INDEXES = {"ByListener": "G1", "ByProgram": "G2", "Outbox": "G3"}


def shard(listener_id: int, n: int = SHARDS) -> int:
    return zlib.crc32(str(int(listener_id)).encode()) % n


def ledger_pk(program: str, day: str, channel: str, s: int) -> str:
    return f"LEDGER#{program}#{day}#{channel}#{s}"


def ledger_key(program: str, day: str, channel: str, listener: int, track: int) -> dict:
    return {"PK": {"S": ledger_pk(program, day, channel, shard(listener))}, "SK": {"S": f"{listener}#{track}"}}


def definition(table_name: str) -> dict:
    def gsi(name: str) -> dict:
        attr = INDEXES[name]
        return {"IndexName": name, "Projection": {"ProjectionType": "ALL"},
                "KeySchema": [{"AttributeName": f"{attr}PK", "KeyType": "HASH"},
                              {"AttributeName": f"{attr}SK", "KeyType": "RANGE"}]}
    types = {"PK": "S", "SK": "S", "G1PK": "S", "G1SK": "S", "G2PK": "S", "G2SK": "N", "G3PK": "S", "G3SK": "N"}
    return {"TableName": table_name, "BillingMode": "PAY_PER_REQUEST",
            "AttributeDefinitions": [{"AttributeName": k, "AttributeType": t} for k, t in types.items()],
            "KeySchema": [{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
            "GlobalSecondaryIndexes": [gsi(name) for name in INDEXES]}


def event_index_pk(program: str, day: str, s: int) -> str:
    return f"EV#{program}#{day}#{s}"


def create_table(client, table_name: str, ttl: bool = True) -> bool:
    """Create the table if missing, wait until it is active, and enable TTL on `ttl` (events expire after the
    retention); True if it was created. (ttl=False is for tests whose clock is not the wall clock: DynamoDB
    Local deletes expired items.)"""
    try:
        client.create_table(**definition(table_name))
        created = True
    except client.exceptions.ResourceInUseException:
        created = False
    client.get_waiter("table_exists").wait(TableName=table_name, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
    state = client.describe_time_to_live(TableName=table_name).get("TimeToLiveDescription", {})
    if ttl and state.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
        client.update_time_to_live(TableName=table_name, TimeToLiveSpecification={
            "Enabled": True, "AttributeName": TTL_ATTRIBUTE})
    return created


def missing(client, table_name: str) -> str | None:
    """What is wrong with the table (missing, or an index missing), or None."""
    try:
        table = client.describe_table(TableName=table_name)["Table"]
    except client.exceptions.ResourceNotFoundException:
        return (f"DynamoDB table {table_name} does not exist (MUSIC_FEEDBACK_FEEDBACK_TABLE): create it with "
                "`music-feedback store create-table --feedback`")
    have = {i["IndexName"] for i in table.get("GlobalSecondaryIndexes", [])}
    lost = [i for i in INDEXES if i not in have]
    if lost:
        return (f"DynamoDB table {table_name} (MUSIC_FEEDBACK_FEEDBACK_TABLE) lacks the index(es) "
                f"{', '.join(lost)}: recreate it with `music-feedback store create-table --feedback`")
    return None
