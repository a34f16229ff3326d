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


# -- limits: 25-item batches, 100-item transactions, throttling, the registry's layout -------------------------
class Calls:
    """Records the size of every BatchWriteItem and TransactWriteItems the client sends."""

    def __init__(self, client):
        self.client, self.batches, self.transactions = client, [], []
        client.meta.events.register("provide-client-params.dynamodb.BatchWriteItem", self.batch)
        client.meta.events.register("provide-client-params.dynamodb.TransactWriteItems", self.transaction)

    def batch(self, params, **kw):
        self.batches.append(sum(len(v) for v in params["RequestItems"].values()))

    def transaction(self, params, **kw):
        self.transactions.append(len(params["TransactItems"]))

    def remove(self):
        self.client.meta.events.unregister("provide-client-params.dynamodb.BatchWriteItem", self.batch)
        self.client.meta.events.unregister("provide-client-params.dynamodb.TransactWriteItems", self.transaction)


def test_batches_hold_25_items_and_transactions_100(store):
    calls = Calls(store.client())
    try:
        store.put_batch("prog", "2025-06-01", day(260))
        assert store.set_status("prog", "2025-06-01", [(i, 10 + i % 7, "email") for i in range(260)], "sent") == 260
    finally:
        calls.remove()
    assert max(calls.batches) == 25 and sum(calls.batches) >= 260
    assert max(calls.transactions) == 100 and sum(calls.transactions) == 260


class Throttler:
    """A real HTTP endpoint in front of the DynamoDB server: the first `times` requests of `operation` get
    DynamoDB's own throttling answer (HTTP 400, `ProvisionedThroughputExceededException`), the rest are
    passed through. boto3 parses and retries them with its own retry handler, as it would on AWS."""

    BODY = (b'{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",'
            b'"message":"The level of configured provisioned throughput for the table was exceeded."}')

    def __init__(self, upstream: str, operation: str, times: int):
        import http.client
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import urlparse

        up, outer = urlparse(upstream), self
        self.throttled, self.passed, self.lock = 0, 0, threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with outer.lock:
                    hit = operation in self.headers.get("X-Amz-Target", "") and outer.throttled < times
                    outer.throttled += hit
                    outer.passed += not hit
                if hit:
                    self.send_response(400)
                    self.send_header("Content-Type", "application/x-amz-json-1.0")
                    self.send_header("Content-Length", str(len(outer.BODY)))
                    self.end_headers()
                    self.wfile.write(outer.BODY)
                    return
                conn = http.client.HTTPConnection(up.hostname, up.port, timeout=30)
                conn.request("POST", self.path, body, {k: v for k, v in self.headers.items() if k.lower() != "host"})
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length", "server", "date"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_throttled_writes_are_retried_by_botocore_and_past_its_attempts_fail_naming_the_table(store):
    """Neither moto nor DynamoDB Local throttles (Local ignores provisioned capacity): a proxy answers
    BatchWriteItem with DynamoDB's throttling error, and botocore's standard retry mode (5 attempts,
    backoff) gets the writes through; throttled past its attempts, the day fails naming the table and a
    re-run completes it."""
    proxy = Throttler(store.endpoint_url, "BatchWriteItem", times=3)
    try:
        through = store.model_copy(update={"endpoint_url": proxy.url, "writers": 1})
        assert through.put_batch("prog", "2025-06-01", day(60)) == 60
        assert proxy.throttled == 3 and store.count("prog", now=NOW) == 60
        proxy.throttled = -100  # throttled for good: 100 more refusals than botocore's 5 attempts
        with pytest.raises(StoreWriteError, match=f"{store.table_name}.*ProvisionedThroughputExceeded"):
            through.put_batch("prog", "2025-06-01", day(90))
    finally:
        proxy.close()
    assert store.put_batch("prog", "2025-06-01", day(90)) == 90
    assert store.count("prog", now=NOW) == len(store.for_channel("prog", "email", now=NOW)) == 90


def test_registry_counts_switch_generation_whole_and_old_heads_still_read(store, monkeypatch):
    """Count items are written before the head that names them, other generations after it are deleted; a
    write that dies before the switch leaves the day as it was; a head of the earlier layout (counts inline)
    is still read."""
    import json

    from music_feedback.store.base import ChannelQuery
    from music_feedback.store.dynamodb import registry

    monkeypatch.setattr(registry, "COUNTS_BYTES", 30)  # a handful of tracks already needs several items
    client, table = store.client(), store.table_name

    def count_items():
        return [i for i in client.scan(TableName=table)["Items"] if i["PK"]["S"].endswith("#C")]

    store.put_batch("prog", "2025-06-01", day(300))
    first = count_items()
    assert len(first) > 2 and len({i["SK"]["S"].split("#")[1] for i in first}) == 1
    q = ChannelQuery("prog", "email", 0.0, None, 30, status=None)
    cut = store.track_cutoffs(q, NOW)
    assert sorted(cut) == list(range(10, 17))  # each of the 7 tracks has ~43 rows, over the cap of 30
    fault = DropItems(client, drop=25, times=None)
    try:
        with pytest.raises(StoreWriteError):
            store.put_batch("prog", "2025-06-01", day(100))  # dies writing the new generation's counts
    finally:
        fault.remove()
    assert store.track_cutoffs(q, NOW) == cut  # the old counts, whole
    store.put_batch("prog", "2025-06-01", day(100))
    assert {i["SK"]["S"].split("#")[1] for i in count_items()} != {first[0]["SK"]["S"].split("#")[1]}
    assert store.track_cutoffs(q, NOW) == {}  # ~14 rows a track now
    # A head written before the counts moved out: the counts inline in meta, no count items.
    head = client.get_item(TableName=table, Key=registry.head_key("prog", "2025-06-01"))["Item"]
    meta = json.loads(head["meta"]["S"])
    meta["track_counts"] = {"email": {str(t): 40 for t in range(10, 17)}}
    for k in ("counts_gen", "counts_parts"):
        meta.pop(k)
    for i in count_items():
        client.delete_item(TableName=table, Key={"PK": i["PK"], "SK": i["SK"]})
    client.put_item(TableName=table, Item={**head, "meta": {"S": json.dumps(meta)}})
    from music_feedback.store.dynamodb import reads
    assert registry.track_counts(client, table, reads.registry(client, table, "prog")[0]) == meta["track_counts"]
    assert store.track_cutoffs(q, NOW) == {}  # the inline counts name the tracks; their rows are under the cap
    assert store.count("prog", now=NOW) == 100 and len(store.for_channel("prog", "email", now=NOW)) == 100
