"""What only the DynamoDB adapter has: the table and indexes, the sharded GSI1 key, number and TTL
encoding, and the write loop's retries of UnprocessedItems (injected with botocore event hooks, since
no local server returns them), on moto's server mode and on DynamoDB Local."""
from __future__ import annotations

import uuid
from collections import Counter

import pytest

from music_feedback import cli
from music_feedback.store.dynamodb import DynamoDBCandidateStore, StoreWriteError
from music_feedback_tests.test_candidate_store import LIVE, NOW, frame, row

pytestmark = pytest.mark.integration


@pytest.fixture(params=["moto", "dynamodb-local"])
def endpoint(request):
    return request.getfixturevalue("moto_endpoint" if request.param == "moto" else "dynamodb_local_endpoint")


@pytest.fixture
def store(endpoint):
    s = DynamoDBCandidateStore(table_name=f"t-{uuid.uuid4().hex[:10]}", endpoint_url=endpoint,
                               backoff_base_s=0.001, backoff_cap_s=0.01, max_retries=6)
    s.create_table(ttl=False)
    return s


class DropItems:
    """A fault: BatchWriteItem requests lose their last `drop` items before they are sent, and the
    response hands them back as UnprocessedItems, as a throttled table does: at most `times` requests,
    or (times=None) every request, for good."""

    def __init__(self, client, drop: int, times: int | None = None):
        self.client, self.drop, self.times, self.calls, self.stash = client, drop, times, 0, {}
        client.meta.events.register("provide-client-params.dynamodb.BatchWriteItem", self.before)
        client.meta.events.register("after-call.dynamodb.BatchWriteItem", self.after)

    def active(self) -> bool:
        return self.times is None or self.calls < self.times

    def before(self, params, context, **kw):
        if not self.active():
            return
        (table, requests), = params["RequestItems"].items()
        if self.times is None:  # always throttled: send one item (a request needs one), hand all back
            context["dropped"] = (table, requests)
            params["RequestItems"] = {table: requests[:1]}
            self.calls += 1
        elif len(requests) > self.drop:  # first sends lose their last `drop` items; re-sends go through
            context["dropped"] = (table, requests[-self.drop:])
            params["RequestItems"] = {table: requests[:-self.drop]}
            self.calls += 1

    def after(self, parsed, context, **kw):
        if "dropped" in context:
            table, dropped = context.pop("dropped")
            parsed.setdefault("UnprocessedItems", {}).setdefault(table, []).extend(dropped)

    def remove(self):
        self.client.meta.events.unregister("provide-client-params.dynamodb.BatchWriteItem", self.before)
        self.client.meta.events.unregister("after-call.dynamodb.BatchWriteItem", self.after)


def day(n: int = 300):
    return frame(*(row(i, 10 + i % 7, (i % 100) / 100, marketplace=("US", "DE")[i % 2]) for i in range(n)))


def test_create_table_has_the_indexes_and_ttl(endpoint, monkeypatch, capsys):
    name = f"t-{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("MUSIC_FEEDBACK_DYNAMODB_ENDPOINT", endpoint)
    assert cli.main(["store", "create-table", "--table", name]) == 0
    assert f"created table {name}" in capsys.readouterr().out
    assert cli.main(["store", "create-table", "--table", name]) == 0  # again: found, not an error
    client = DynamoDBCandidateStore(endpoint_url=endpoint).client()
    desc = client.describe_table(TableName=name)["Table"]
    assert sorted(i["IndexName"] for i in desc["GlobalSecondaryIndexes"]) == ["GSI1", "GSI2"]
    ttl = client.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    assert ttl["TimeToLiveStatus"] in ("ENABLED", "ENABLING") and ttl["AttributeName"] == "ttl"


def test_create_table_against_nothing_is_a_clear_error(monkeypatch, capsys):
    monkeypatch.setenv("MUSIC_FEEDBACK_DYNAMODB_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    assert cli.main(["store", "create-table", "--table", "t"]) == 2
    assert "could not create table t on http://127.0.0.1:9" in capsys.readouterr().err


def test_gsi1_is_sharded_by_marketplace_date_and_listener_and_numbers_are_exact(store):
    store.put_batch("prog", "2025-06-01", day())
    items = store.client().scan(TableName=store.table_name)["Items"]
    cands = [i for i in items if "GSI1PK" in i]
    assert len(cands) == 300
    parts = Counter(i["GSI1PK"]["S"] for i in cands)
    assert {p.rsplit("#S#", 1)[0] for p in parts} == {"P#prog#C#email#M#US#B#2025-06-01",
                                                      "P#prog#C#email#M#DE#B#2025-06-01"}
    assert len(parts) == 16 and max(parts.values()) < 40  # 8 shards a marketplace, evenly filled
    one = next(i for i in cands if i["listener_id"]["N"] == "33")
    assert one["score"] == {"N": "0.33"} and one["ttl"] == {"N": str(LIVE)}
    assert store.for_listener("prog", 33, now=NOW)[0]["score"] == 0.33


def test_unprocessed_items_are_resent_until_written(store):
    fault = DropItems(store.client(), drop=7, times=20)
    try:
        assert store.put_batch("prog", "2025-06-01", day()) == 300
    finally:
        fault.remove()
    assert fault.calls == 12  # each full request of 25 lost 7 items, re-sent after a backoff
    assert store.last_write.retries == 12
    assert store.count("prog", now=NOW) == 300
    assert len(store.for_channel("prog", "email", now=NOW)) == 300


def test_throttling_past_the_retries_fails_naming_the_table_and_a_rerun_completes(store):
    store.put_batch("prog", "2025-06-01", day(100))
    fault = DropItems(store.client(), drop=25, times=None)
    try:
        with pytest.raises(StoreWriteError, match=store.table_name):
            store.put_batch("prog", "2025-06-01", day(300))
    finally:
        fault.remove()
    assert store.put_batch("prog", "2025-06-01", day(300)) == 300
    assert store.count("prog", now=NOW) == 300
    rows = store.for_channel("prog", "email", now=NOW)
    assert len(rows) == len({(r["listener_id"], r["track_id"]) for r in rows}) == 300
    store.put_batch("prog", "2025-06-01", day(50))  # a smaller re-run leaves exactly its rows
    assert len(store.for_channel("prog", "email", now=NOW)) == store.count("prog", now=NOW) == 50


def test_stored_candidates_writes_through_the_configured_dynamodb_store(endpoint, monkeypatch):
    from dagster import AssetSpec, IOManager, materialize

    from music_feedback.defs.batch.assets.store import build_store
    from music_feedback.defs.common import key
    from music_feedback.defs.partitions import daily_partitions
    from music_feedback.programs.loader import load_programs
    from music_feedback.resources import candidate_store
    from music_feedback_tests.test_store_asset import scored

    name = f"t-{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("MUSIC_FEEDBACK_CANDIDATE_STORE", "dynamodb")
    monkeypatch.setenv("MUSIC_FEEDBACK_DYNAMODB_ENDPOINT", endpoint)
    monkeypatch.setenv("MUSIC_FEEDBACK_DYNAMODB_TABLE", name)
    store = candidate_store()
    assert isinstance(store, DynamoDBCandidateStore) and store.table_name == name
    store.create_table(ttl=False)
    program = load_programs()[0]

    class Scored(IOManager):
        def handle_output(self, context, obj):
            raise AssertionError("not written here")

        def load_input(self, context):
            return scored().lazy()  # the store asset reads its input lazily (only the stored columns)

    upstream = AssetSpec(key(program, "scored_candidates"), partitions_def=daily_partitions(program))
    result = materialize([upstream, build_store(program, daily_partitions(program))], partition_key="2026-11-23",
                         resources={"candidate_store": store, "io_manager": Scored()},
                         selection=[key(program, "stored_candidates")])
    assert result.success
    rows = store.for_listener(program.program_id, 1, now=NOW.replace(year=2026, month=11, day=24))
    assert sorted(r["channel"] for r in rows) == ["email", "voice-assistant"]


def test_a_refused_write_fails_naming_the_table(store):
    from botocore.exceptions import ClientError

    def throttle(**kw):
        raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}},
                          "BatchWriteItem")

    store.client().meta.events.register("before-call.dynamodb.BatchWriteItem", throttle)
    try:
        with pytest.raises(StoreWriteError, match=f"{store.table_name}.*ProvisionedThroughputExceededException"):
            store.put_batch("prog", "2025-06-01", day(30))
    finally:
        store.client().meta.events.unregister("before-call.dynamodb.BatchWriteItem", throttle)
    assert store.put_batch("prog", "2025-06-01", day(30)) == 30
    assert store.count("prog", now=NOW) == 30


def test_a_rerun_with_other_marketplaces_and_shards_leaves_exactly_its_rows(endpoint):
    name = f"t-{uuid.uuid4().hex[:10]}"
    first = DynamoDBCandidateStore(table_name=name, endpoint_url=endpoint, shards=16)
    first.create_table(ttl=False)
    first.put_batch("prog", "2025-06-01", day(200))  # US and DE, 16 shards
    second = first.model_copy(update={"shards": 8})
    only_us = frame(*(row(i, 10, 0.5) for i in range(0, 60, 2)))
    assert second.put_batch("prog", "2025-06-01", only_us) == 30
    rows = second.for_channel("prog", "email", now=NOW)
    assert sorted(r["listener_id"] for r in rows) == list(range(0, 60, 2))
    assert second.count("prog", now=NOW) == 30
    assert second.for_channel("prog", "email", marketplace="DE", now=NOW) == []
    items = second.client().scan(TableName=name)["Items"]
    assert len([i for i in items if "GSI1PK" in i]) == 30  # nothing of the first run is left behind
