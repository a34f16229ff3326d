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
  track tally  PK TM#{program}#{track}  SK M
  suppression  PK SUPPRESSED#{shard}  SK {listener}
  event        PK EVENT#{id}  SK E
               G2 EVP#{program} / id                                  (a program's events, in order)
               G3 UNPUB#{shard} / id                                  (the outbox; removed when published)
  event ids    PK COUNTER  SK EVENT  (an atomic counter)

The indexes are G1 = ByListener, G2 = ByProgram (numeric sort key), G3 = Outbox (sparse).

The ledger and the program-wide indexes are sharded by crc32 of the listener: 100,000 requests a day on
one key would pass a partition's 1,000 writes a second.
"""
from __future__ import annotations

import zlib

SHARDS = 8
OUTBOX_SHARDS = 4
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


def create_table(client, table_name: str) -> bool:
    """Create the table if missing and wait until it is active; True if it was created."""
    try:
        client.create_table(**definition(table_name))
        created = True
    except client.exceptions.ResourceInUseException:
        created = False
    client.get_waiter("table_exists").wait(TableName=table_name, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
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
