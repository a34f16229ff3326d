"""`music-feedback store create-table`: the table, its two indexes, and TTL on `ttl` (epoch seconds)."""
from __future__ import annotations

TTL_ATTRIBUTE = "ttl"


def definition(table_name: str) -> dict:
    def gsi(name: str) -> dict:
        return {"IndexName": name, "Projection": {"ProjectionType": "ALL"},
                "KeySchema": [{"AttributeName": f"{name}PK", "KeyType": "HASH"},
                              {"AttributeName": f"{name}SK", "KeyType": "RANGE"}]}

    names = ("PK", "SK", "GSI1PK", "GSI1SK", "GSI2PK", "GSI2SK")
    return {
        "TableName": table_name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": n, "AttributeType": "S"} for n in names],
        "KeySchema": [{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
        "GlobalSecondaryIndexes": [gsi("GSI1"), gsi("GSI2")],
    }


def create_table(client, table_name: str, ttl: bool = True) -> bool:
    """Create the table (if missing), wait until it is active, and enable TTL. True if it was created.
    (ttl=False is for tests whose clock is not the wall clock: DynamoDB Local does delete expired items.)"""
    created = False
    try:
        client.create_table(**definition(table_name))
        created = True
    except client.exceptions.ResourceInUseException:
        pass
    client.get_waiter("table_exists").wait(TableName=table_name, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
    state = client.describe_time_to_live(TableName=table_name).get("TimeToLiveDescription", {})
    if ttl and state.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
        client.update_time_to_live(TableName=table_name, TimeToLiveSpecification={
            "Enabled": True, "AttributeName": TTL_ATTRIBUTE})
    return created
