"""Contract suite for CandidateStore adapters: SQLite, DynamoDB on moto's server mode and DynamoDB on
Amazon's DynamoDB Local all pass it unchanged, so tests use only the port's API."""
from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta, timezone

import polars as pl
import pytest

from music_feedback.store import CANDIDATE_COLUMNS, CANDIDATE_SCHEMA, CandidateStore, SQLiteCandidateStore

pytestmark = pytest.mark.unit

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=timezone.utc)
LIVE = int(NOW.timestamp()) + 86_400
DEAD = int(NOW.timestamp()) - 1


ADAPTERS = ["sqlite", pytest.param("dynamodb-moto", marks=pytest.mark.integration),
            pytest.param("dynamodb-local", marks=pytest.mark.integration)]


def dynamodb_store(endpoint: str, **kw):
    from music_feedback.store.dynamodb import DynamoDBCandidateStore
    s = DynamoDBCandidateStore(table_name=f"candidates-{uuid.uuid4().hex[:10]}", endpoint_url=endpoint, **kw)
    # The suite's clock is in 2025: with TTL on, DynamoDB Local would delete its rows as they are written.
    s.create_table(ttl=False)
    return s


@pytest.fixture(params=ADAPTERS)
def store(request, tmp_path) -> CandidateStore:
    if request.param == "sqlite":
        return SQLiteCandidateStore(path=str(tmp_path / "nested" / "candidates.sqlite"))
    if request.param == "dynamodb-moto":
        return dynamodb_store(request.getfixturevalue("moto_endpoint"))
    return dynamodb_store(request.getfixturevalue("dynamodb_local_endpoint"))


def row(listener_id: int, track_id: int, score: float, **kw) -> dict:
    base = dict(
        channel="email", propensity_score=0.5, affinity_score=0.25, marketplace="US", genre="rock",
        time_zone="America/New_York", track_name=f"Track {track_id}", artist_id=7,
        propensity_model_version="prop-v1", affinity_model_version="aff-v1",
        expires_at=LIVE,
    )
    return {**base, "listener_id": listener_id, "track_id": track_id, "score": score, **kw}


def frame(*rows: dict) -> pl.DataFrame:
    return pl.DataFrame(list(rows), schema=CANDIDATE_SCHEMA)


def keys(rows: list[dict]) -> list[tuple]:
    """(listener_id, track_id) per row in returned order; a non-email channel is appended."""
    out = []
    for r in rows:
        key = (r["listener_id"], r["track_id"])
        out.append(key if r["channel"] == "email" else (*key, r["channel"]))
    return out


def everything(store: CandidateStore, program_id: str, listeners=range(1, 10)) -> list[dict]:
    return [r for lid in listeners for r in store.for_listener(program_id, lid, now=NOW)]


def test_port_is_abstract_resource(store):
    assert isinstance(store, CandidateStore)
    with pytest.raises(TypeError):
        CandidateStore()


def test_put_is_idempotent_and_rows_round_trip(store):
    df = frame(row(1, 10, 0.9), row(1, 11, 0.8, channel="voice"), row(2, 10, 0.7))
    assert store.put_batch("prog", "2025-06-01", df) == 3
    first = everything(store, "prog")
    assert store.put_batch("prog", "2025-06-01", df) == 3
    assert everything(store, "prog") == first
    assert store.count("prog", now=NOW) == store.count("prog", "2025-06-01", now=NOW) == 3
    got = store.for_track("prog", 10, "2025-06-01", now=NOW)[0]
    assert set(got) == {*CANDIDATE_COLUMNS, "program_id", "batch_date", "status"}
    assert got == {**row(1, 10, 0.9), "program_id": "prog", "batch_date": "2025-06-01", "status": "pending"}


def test_put_replaces_only_its_batch(store):
    store.put_batch("prog", "2025-06-01", frame(row(1, 10, 0.9), row(2, 10, 0.8), row(3, 10, 0.7)))
    store.put_batch("prog", "2025-06-02", frame(row(1, 10, 0.5), row(2, 10, 0.4)))
    store.put_batch("other", "2025-06-01", frame(row(1, 10, 0.3), row(2, 10, 0.2)))
    assert store.put_batch("prog", "2025-06-01", frame(row(2, 10, 0.6))) == 1
    assert store.count("prog", "2025-06-01", now=NOW) == 1
    assert store.for_track("prog", 10, "2025-06-01", now=NOW)[0]["score"] == 0.6
    assert store.count("prog", "2025-06-02", now=NOW) == 2
    assert store.count("other", now=NOW) == 2
    assert store.count("prog", now=NOW) == 3
    assert store.put_batch("prog", "2025-06-01", frame()) == 0  # an empty batch empties it
    assert store.count("prog", "2025-06-01", now=NOW) == 0
    assert store.count("prog", now=NOW) == 2


def test_for_listener(store):
    store.put_batch("prog", "2025-06-01", frame(
        row(1, 10, 0.2), row(1, 11, 0.9, channel="voice"), row(2, 10, 0.8)
    ))
    store.put_batch("prog", "2025-06-02", frame(row(1, 12, 0.1)))
    store.put_batch("other", "2025-06-01", frame(row(1, 13, 0.99)))
    got = store.for_listener("prog", 1, now=NOW)
    assert [(r["batch_date"], r["track_id"]) for r in got] == [
        ("2025-06-02", 12), ("2025-06-01", 11), ("2025-06-01", 10)
    ]
    assert {r["program_id"] for r in got} == {"prog"}
    assert store.for_listener("prog", 99, now=NOW) == []


def test_for_channel_orders_by_score_then_listener_then_track(store):
    store.put_batch("prog", "2025-06-01", frame(
        row(3, 10, 0.5), row(1, 11, 0.5), row(1, 10, 0.5), row(2, 12, 0.9), row(4, 13, 0.1),
        row(5, 10, 0.95, channel="voice"),
    ))
    store.put_batch("other", "2025-06-01", frame(row(9, 10, 1.0)))
    got = store.for_channel("prog", "email", now=NOW)
    assert keys(got) == [(2, 12), (1, 10), (1, 11), (3, 10), (4, 13)]
    at_least_half = store.for_channel("prog", "email", min_score=0.5, now=NOW)
    assert [r["score"] for r in at_least_half] == [0.9, 0.5, 0.5, 0.5]
    assert keys(store.for_channel("prog", "email", limit=2, now=NOW)) == keys(got)[:2]
    assert keys(store.for_channel("prog", "voice", now=NOW)) == [(5, 10, "voice")]
    assert store.for_channel("prog", "sms", now=NOW) == []


def test_for_channel_marketplace_and_max_per_track(store):
    store.put_batch("prog", "2025-06-01", frame(
        row(1, 10, 0.9), row(2, 10, 0.8), row(3, 10, 0.7), row(4, 11, 0.6),
        row(5, 11, 0.95, marketplace="DE"), row(6, 10, 0.99, marketplace="DE"),
    ))
    assert keys(store.for_channel("prog", "email", marketplace="DE", now=NOW)) == [(6, 10), (5, 11)]
    per_track = store.for_channel("prog", "email", max_per_track=2, marketplace="US", now=NOW)
    assert keys(per_track) == [(1, 10), (2, 10), (4, 11)]
    assert keys(store.for_channel("prog", "email", max_per_track=1, limit=2, now=NOW)) == [(6, 10), (5, 11)]
    assert keys(store.for_channel("prog", "email", max_per_track=1, min_score=0.96, now=NOW)) == [(6, 10)]


def test_for_track(store):
    store.put_batch("prog", "2025-06-01", frame(
        row(2, 10, 0.4), row(1, 10, 0.4, channel="voice"), row(3, 10, 0.9), row(1, 11, 1.0)
    ))
    store.put_batch("prog", "2025-06-02", frame(row(4, 10, 0.5)))
    store.put_batch("other", "2025-06-01", frame(row(5, 10, 0.5)))
    assert keys(store.for_track("prog", 10, "2025-06-01", now=NOW)) == [(3, 10), (1, 10, "voice"), (2, 10)]
    assert keys(store.for_track("prog", 10, "2025-06-02", now=NOW)) == [(4, 10)]
    assert store.for_track("prog", 10, "2025-05-31", now=NOW) == []


def test_expired_rows_are_invisible_before_purge(store):
    at_now = int(NOW.timestamp())  # expires_at == now counts as expired
    store.put_batch("prog", "2025-06-01", frame(
        row(1, 10, 0.9, expires_at=DEAD), row(2, 10, 0.8, expires_at=at_now), row(3, 10, 0.7),
    ))
    store.put_batch("prog", "2025-05-01", frame(row(1, 11, 0.6, expires_at=DEAD)))  # wholly expired batch
    assert store.count("prog", now=NOW) == 1
    assert store.count("prog", "2025-05-01", now=NOW) == 0
    assert store.for_listener("prog", 1, now=NOW) == store.for_listener("prog", 2, now=NOW) == []
    assert keys(store.for_channel("prog", "email", now=NOW)) == [(3, 10)]
    assert keys(store.for_channel("prog", "email", max_per_track=5, now=NOW)) == [(3, 10)]
    assert keys(store.for_track("prog", 10, "2025-06-01", now=NOW)) == [(3, 10)]
    earlier = datetime.fromtimestamp(DEAD - 1, tz=timezone.utc)  # before expiry, all were live
    assert store.count("prog", now=earlier) == 4
    assert store.purge_expired(now=NOW) == 3
    assert store.purge_expired(now=NOW) == 0
    assert store.count("prog", now=earlier) == 1


def test_now_defaults_to_current_utc_time(store):
    t = int(time.time())
    store.put_batch("prog", "2025-06-01", frame(
        row(1, 10, 0.9, expires_at=t - 60), row(2, 10, 0.8, expires_at=t + 3600)
    ))
    assert store.count("prog") == 1
    assert keys(store.for_channel("prog", "email")) == [(2, 10)]
    assert store.for_listener("prog", 1) == []
    assert len(store.for_track("prog", 10, "2025-06-01")) == 1
    assert store.purge_expired() == 1


@pytest.mark.parametrize(
    "bad, message",
    [
        (frame(row(1, 10, 0.5)).drop("genre", "expires_at"), "genre, expires_at"),
        (frame(row(1, 10, 0.5), row(2, 10, 1.5)), r"\[0, 1\]"),
        (frame(row(1, 10, -0.1)), r"\[0, 1\]"),
        (frame(row(1, 10, 0.5), row(1, 10, 0.6)), "duplicate"),
    ],
    ids=["missing-columns", "score-above-1", "score-below-0", "duplicate-key"],
)
def test_bad_input_raises_and_writes_nothing(store, bad, message):
    store.put_batch("prog", "2025-06-01", frame(row(7, 70, 0.7)))
    before = everything(store, "prog")
    with pytest.raises(ValueError, match=message):
        store.put_batch("prog", "2025-06-01", bad)
    with pytest.raises(ValueError, match=message):
        store.put_batch("prog", "2025-06-02", bad)
    assert everything(store, "prog") == before
    assert store.count("prog", now=NOW) == 1


@pytest.mark.integration
def test_history_of_expired_batches_does_not_limit_reads(store):
    """Reads union only live batches, so 600 days of history (past SQLite's 500-term limit) still work
    (40 days on DynamoDB, which has no such limit and whose local servers are slow to write)."""
    day0 = datetime(2025, 1, 1, tzinfo=timezone.utc)
    days = 600 if isinstance(store, SQLiteCandidateStore) else 40
    for i in range(days):
        expires = int((day0 + timedelta(days=i + 14)).timestamp())
        store.put_batch("p", (day0 + timedelta(days=i)).date().isoformat(), frame(row(1, i, 0.5, expires_at=expires)))
    now = day0 + timedelta(days=days - 1, hours=1)
    assert len(store.for_listener("p", 1, now=now)) == 14
    assert store.count("p", now=now) == 14
    assert store.purge_expired(now=now) == days - 14


def test_replacing_a_batch_keeps_delivery_status_of_rows_that_remain(store):
    """A re-run must not bring back, as pending, a candidate a channel already sent."""
    store.put_batch("prog", "2025-06-01", frame(row(1, 10, 0.9), row(2, 10, 0.8), row(3, 10, 0.7)))
    assert store.set_status("prog", "2025-06-01", [(1, 10, "email")], "sent") == 1
    store.put_batch("prog", "2025-06-01", frame(row(1, 10, 0.95), row(2, 10, 0.8)))
    status = {r["listener_id"]: r["status"] for lid in (1, 2, 3) for r in store.for_listener("prog", lid, now=NOW)}
    assert status == {1: "sent", 2: "pending"}
    assert store.count("prog", "2025-06-01", now=NOW) == 2


def test_set_status_is_a_compare_and_set(store):
    store.put_batch("prog", "2025-06-01", frame(row(1, 10, 0.9), row(2, 10, 0.8)))
    assert store.set_status("prog", "2025-06-01", [(1, 10, "email"), (2, 10, "email")], "sending",
                            expected="pending") == 2
    assert store.set_status("prog", "2025-06-01", [(1, 10, "email")], "sending", expected="pending") == 0
    assert store.set_status("prog", "2025-06-01", [(1, 10, "email")], "sent", expected="sending") == 1
    assert store.set_status("prog", "2025-06-01", [(9, 10, "email")], "sent") == 0  # no such row
    assert store.set_status("prog", "2025-06-02", [(1, 10, "email")], "sent") == 0  # no such batch
    with pytest.raises(ValueError, match="unknown status"):
        store.set_status("prog", "2025-06-01", [(1, 10, "email")], "lost")
    assert {r["listener_id"]: r["status"] for r in everything(store, "prog")} == {1: "sent", 2: "sending"}


def test_set_status_counts_each_row_of_a_large_mixed_set(store):
    """Many rows at once (more than one transaction on DynamoDB), some already moved, some missing and
    one repeated: each row is judged on its own condition."""
    store.put_batch("prog", "2025-06-01", frame(*(row(lid, 10, 0.5) for lid in range(1, 251))))
    assert store.set_status("prog", "2025-06-01", [(lid, 10, "email") for lid in range(1, 11)], "sent") == 10
    wanted = [(lid, 10, "email") for lid in range(1, 261)] + [(20, 10, "email")]
    assert store.set_status("prog", "2025-06-01", wanted, "sending", expected="pending") == 240
    status = {r["listener_id"]: r["status"] for r in everything(store, "prog", range(1, 251))}
    assert status == {lid: "sent" if lid <= 10 else "sending" for lid in range(1, 251)}


def pages(store, q, size: int, now=NOW) -> list[list[dict]]:
    from music_feedback.store.base import page_key
    cut, after, out = store.track_cutoffs(q, now=now), None, []
    while True:
        page = store.channel_page(q, after, size, cut, now=now)
        if not page:
            return out
        out.append(page)
        after = page_key(page[-1])


def test_channel_pages_walk_the_order_across_batches_with_ties(store):
    from music_feedback.store.base import ChannelQuery
    store.put_batch("prog", "2025-06-01", frame(
        row(1, 10, 0.5), row(2, 11, 0.7), row(3, 12, 0.5), row(4, 10, 0.9), row(5, 13, 0.2)))
    store.put_batch("prog", "2025-06-02", frame(row(1, 10, 0.5), row(6, 14, 0.7), row(7, 10, 1.0)))
    got = pages(store, ChannelQuery("prog", "email", min_score=0.3), size=2)
    assert [len(p) for p in got] == [2, 2, 2, 1]
    flat = [(r["listener_id"], r["track_id"], r["batch_date"]) for p in got for r in p]
    assert flat == [(7, 10, "2025-06-02"), (4, 10, "2025-06-01"), (2, 11, "2025-06-01"), (6, 14, "2025-06-02"),
                    (1, 10, "2025-06-01"), (1, 10, "2025-06-02"), (3, 12, "2025-06-01")]
    assert set(got[0][0]) >= {"listener_id", "score", "batch_date", "status", "program_id", "marketplace"}


def test_channel_pages_cap_per_track_marketplace_and_pending_only(store):
    from music_feedback.store.base import ChannelQuery
    store.put_batch("prog", "2025-06-01", frame(
        *(row(i, 10, 0.9 - i / 100) for i in range(1, 8)), row(20, 11, 0.95), row(21, 10, 0.99, marketplace="DE"),
        row(22, 10, 0.98, expires_at=DEAD)))
    store.put_batch("prog", "2025-06-02", frame(row(30, 10, 0.885)))
    q = ChannelQuery("prog", "email", max_per_track=3)
    assert store.track_cutoffs(q, now=NOW) == {10: (0.885, 30, 10, "2025-06-02")}
    flat = [(r["listener_id"], r["track_id"]) for p in pages(store, q, size=2) for r in p]
    assert flat == [(21, 10), (20, 11), (1, 10), (30, 10)]
    us = ChannelQuery("prog", "email", marketplace="US", max_per_track=3)
    assert [(r["listener_id"]) for p in pages(store, us, size=10) for r in p] == [20, 1, 30, 2]
    store.set_status("prog", "2025-06-01", [(1, 10, "email")], "sent")  # it still counts towards the cap
    assert [(r["listener_id"]) for p in pages(store, us, size=10) for r in p] == [20, 30, 2]
    anything = ChannelQuery("prog", "email", marketplace="US", status=None)
    assert len([r for p in pages(store, anything, size=3) for r in p]) == 9


def test_channel_page_json_matches_channel_page(store):
    """An adapter may serialise pages itself; what it returns must be serving_item of channel_page."""
    import orjson

    from music_feedback.store.base import ChannelQuery, page_key, serving_item
    store.put_batch("prog", "2025-06-01", frame(
        row(1, 10, 0.1 + 0.2), row(2, 11, 1.0, propensity_score=None), row(3, 12, 1e-7, marketplace=None),
        row(4, 10, 0.9793882783398715, track_name='Quote " and \\ backslash é')))
    q = ChannelQuery("prog", "email")
    rows = store.channel_page(q, None, 3, {}, now=NOW)
    items, last = store.channel_page_json(q, None, 3, {}, now=NOW)
    assert [orjson.loads(i) for i in items] == [serving_item(r) for r in rows]
    assert last == page_key(rows[-1])
    more, end = store.channel_page_json(q, last, 3, {}, now=NOW)
    assert [orjson.loads(i)["listener_id"] for i in more] == [3] and end == page_key(orjson.loads(more[0]))
    assert store.channel_page_json(q, end, 3, {}, now=NOW) == ([], None)


@pytest.mark.parametrize("seed", [1, 2])
def test_channel_pages_match_a_brute_force_oracle(store, seed):
    """Random days with tied scores, caps and marketplaces: paging gives exactly the ranked, capped,
    pending rows that sorting everything in Python gives."""
    import random

    from music_feedback.store.base import ChannelQuery, page_key
    rnd = random.Random(seed)
    days = {}
    for d in ("2025-06-01", "2025-06-02"):
        keys_ = {(rnd.randrange(40), rnd.randrange(6)) for _ in range(120)}
        days[d] = [row(lid, tid, rnd.choice([0.2, 0.5, 0.5, 0.7, 0.9, rnd.random()]),
                       marketplace=rnd.choice(["US", "DE"])) for lid, tid in sorted(keys_)]
        store.put_batch("prog", d, frame(*days[d]))
        sent = [(r["listener_id"], r["track_id"], "email") for r in days[d][::7]]
        store.set_status("prog", d, sent, "sent")
        for r in days[d][::7]:
            r["status"] = "sent"
    for min_score, market, cap, size in ((0.0, None, 9, 23), (0.5, "US", 4, 11), (0.3, None, None, 50)):
        q = ChannelQuery("prog", "email", min_score, market, cap)
        got = [page_key(r) for p in pages(store, q, size) for r in p]
        ranked = sorted(((r["score"], r["listener_id"], r["track_id"], d, r.get("status", "pending"))
                         for d, rows in days.items() for r in rows
                         if r["score"] >= min_score and market in (None, r["marketplace"])),
                        key=lambda k: (-k[0], k[1], k[2], k[3]))
        seen: dict[int, int] = {}
        want = []
        for k in ranked:
            seen[k[2]] = seen.get(k[2], 0) + 1
            if (cap is None or seen[k[2]] <= cap) and k[4] == "pending":
                want.append(k[:4])
        assert got == want, (min_score, market, cap)


def _two_batches(store) -> None:
    store.put_batch("prog", "2025-06-01", frame(row(1, 10, 0.1 + 0.2), row(2, 11, 1.0), row(3, 12, 1e-7, affinity_score=0.0),
                                               row(4, 13, 0.9793882783398715, track_name="Ünïcode ✓ 'single'")))
    store.put_batch("prog", "2025-06-02", frame(row(5, 10, 0.5, track_name='Quote " and \\ backslash'),
                                               row(6, 10, 0.4, propensity_score=None), row(1, 10, 0.1 + 0.2)))
    store.set_status("prog", "2025-06-01", [(2, 11, "email")], "sent")


def test_sqlite_page_renderings_agree(tmp_path, monkeypatch):
    """A batch is stored with each row's JSON, which pages serve as they are: the bytes orjson writes for
    the row, with its current status. Batches stored before that are read with json_object, or printf
    when no text needs escaping, and with or without their date in the channel index: the same values.
    A narrow batch (no columns for what the JSON holds) serves the same bytes and reads the same rows."""
    import sqlite3

    import orjson

    from music_feedback.store import sqlite_store
    from music_feedback.store.base import ChannelQuery, serving_item
    from music_feedback.store.sqlite_serving import GENERAL, PLAIN, RENDERED
    anything = ChannelQuery("prog", "email", status=None)
    with monkeypatch.context() as m:  # the layout before narrow batches: a column for every value
        m.setattr(sqlite_store, "FROM_ITEM", ())
        wide = SQLiteCandidateStore(path=str(tmp_path / "wide.sqlite"))
        _two_batches(wide)
    with sqlite3.connect(wide.path) as conn:
        assert set(conn.execute("SELECT batch_date, plain, dated, narrow FROM candidate_batches")) == {
            ("2025-06-01", RENDERED, 1, 0), ("2025-06-02", RENDERED, 1, 0)}
    columns = sorted(wide.for_channel("prog", "email", now=NOW), key=lambda r: (-r["score"], r["listener_id"],
                                                                                  r["track_id"], r["batch_date"]))
    served, _ = wide.channel_page_json(anything, None, 10, {}, now=NOW)
    assert served == [orjson.dumps(serving_item(r)) for r in columns]
    assert len(served) == 7 and b'"status":"sent"' in b"".join(served)
    for first, dated in ((PLAIN, 1), (GENERAL, 1), (GENERAL, 0)):  # the second batch needs escaping
        with sqlite3.connect(wide.path) as conn:
            conn.execute("UPDATE candidate_batches SET plain = CASE batch_date WHEN '2025-06-01' THEN ? ELSE ? END, "
                         "dated = ?", (first, GENERAL, dated))
        got, _ = wide.channel_page_json(anything, None, 10, {}, now=NOW)
        assert [orjson.loads(b) for b in got] == [orjson.loads(b) for b in served], (first, dated)
        assert [serving_item(r) for r in wide.channel_page(anything, None, 10, {}, now=NOW)] == [
            orjson.loads(b) for b in served]

    narrow = SQLiteCandidateStore(path=str(tmp_path / "narrow.sqlite"))
    _two_batches(narrow)
    with sqlite3.connect(narrow.path) as conn:
        assert {r[0] for r in conn.execute("SELECT narrow FROM candidate_batches")} == {1}
        table_columns = {r[1] for r in conn.execute("PRAGMA table_xinfo(cand_1)")}
        assert not table_columns & set(sqlite_store.FROM_ITEM)
    assert narrow.channel_page_json(anything, None, 10, {}, now=NOW)[0] == served
    assert [serving_item(r) for r in narrow.channel_page(anything, None, 10, {}, now=NOW)] == [
        orjson.loads(b) for b in served]
    for read in (lambda s: s.for_channel("prog", "email", now=NOW), lambda s: s.for_listener("prog", 1, now=NOW),
                 lambda s: s.for_track("prog", 10, "2025-06-02", now=NOW)):
        assert read(narrow) == read(wide)


def test_sqlite_rows_json_is_the_same_rendered_in_slices(monkeypatch):
    """A big batch's JSON is encoded in slices on a pool: the same bytes, in the same order, as at once."""
    from music_feedback.store import sqlite_serving
    df = frame(*[row(i, 10 + i % 3, i / 11, track_name=f"T{i} \u00e9") for i in range(10)])
    whole = sqlite_serving.rendered(df)
    monkeypatch.setattr(sqlite_serving, "RENDER_SLICE", 3)
    assert sqlite_serving.rendered(df).to_list() == whole.to_list()


def test_sqlite_narrow_batch_reads_back_every_value_exactly(tmp_path):
    """Values read from a narrow batch's JSON are the values written: REALs to the last bit, text with any
    character, NULLs as NULL."""
    import random

    rng = random.Random(7)
    rows = [row(i, 10 + i % 7, rng.random(), propensity_score=rng.random() ** 9, affinity_score=rng.uniform(0, 1e-300),
                artist_id=rng.randrange(2**62), genre=rng.choice(["pop", None, 'a"b\\c\n\u00e9']),
                time_zone=rng.choice(["Asia/Tokyo", None]), track_name=rng.choice(["\u2713 ok", "", None]))
            for i in range(300)]
    store = SQLiteCandidateStore(path=str(tmp_path / "c.sqlite"))
    store.put_batch("prog", "2025-06-01", frame(*rows))
    got = {r["listener_id"]: r for r in store.for_channel("prog", "email", limit=1000, now=NOW)}
    assert [{c: got[r["listener_id"]][c] for c in CANDIDATE_COLUMNS} for r in rows] == frame(*rows).to_dicts()


def test_sqlite_keeps_a_batch_constant_once_and_reads_it_back_the_same(tmp_path):
    """Model versions and expiry that are one value in a batch become constants of its table (not stored
    per row); a batch where they vary stores them per row; both read back exactly as written."""
    import sqlite3

    store = SQLiteCandidateStore(path=str(tmp_path / "c.sqlite"))
    same = frame(row(1, 10, 0.9), row(2, 10, 0.8, channel="voice"))
    mixed = frame(row(3, 10, 0.7), row(4, 11, 0.6, propensity_model_version="prop-v2", expires_at=LIVE + 60))
    store.put_batch("prog", "2025-06-01", same)
    store.put_batch("prog", "2025-06-02", mixed)
    with sqlite3.connect(store.path) as conn:
        generated = {d: {r[1] for r in conn.execute(f"PRAGMA table_xinfo(cand_{i})") if r[6] == 2}
                     for i, d in conn.execute("SELECT id, batch_date FROM candidate_batches")}
    assert generated == {"2025-06-01": {"propensity_model_version", "affinity_model_version", "expires_at",
                                        "batch_date"},
                         "2025-06-02": {"affinity_model_version", "batch_date"}}
    for day, df in (("2025-06-01", same), ("2025-06-02", mixed)):
        got = [r for lid in range(1, 5) for r in store.for_listener("prog", lid, now=NOW) if r["batch_date"] == day]
        assert [{c: r[c] for c in CANDIDATE_COLUMNS} for r in got] == df.to_dicts()


def test_sqlite_a_new_file_gets_8k_pages_and_an_old_file_keeps_its_own(tmp_path):
    """A batch is written twice (WAL, then checkpoint): 8 KiB pages store a day faster. A file made before
    keeps its page size (only a VACUUM changes it) and works as before."""
    import sqlite3

    from music_feedback.store.sqlite_store import PAGE_BYTES

    new = SQLiteCandidateStore(path=str(tmp_path / "new.sqlite"))
    new.put_batch("prog", "2025-06-01", frame(row(1, 10, 0.9)))
    old_path = tmp_path / "old.sqlite"
    with sqlite3.connect(old_path) as conn:
        conn.execute("PRAGMA page_size=4096")
        conn.execute("CREATE TABLE earlier (x INTEGER)")
    old = SQLiteCandidateStore(path=str(old_path))
    old.put_batch("prog", "2025-06-01", frame(row(1, 10, 0.9)))
    sizes = {}
    for name, path in (("new", new.path), ("old", old_path)):
        with sqlite3.connect(path) as conn:
            sizes[name] = conn.execute("PRAGMA page_size").fetchone()[0]
    assert sizes == {"new": PAGE_BYTES, "old": 4096} and PAGE_BYTES == 8192
    assert [r["track_id"] for r in old.for_listener("prog", 1, now=NOW)] == [10]


def test_writes_and_reads_a_day_with_100000_tracks(store, request):
    """Five times the day a single registry item could hold (it passed 400 KB at ~20,000 tracks): one small
    row a track, every 1,000th track twice, so the per-track cap must find those in the registry."""
    n, twice = 100_000, range(0, 100_000, 1_000)
    small = dict(genre="g", time_zone="UTC", track_name="t", propensity_model_version="p",
                 affinity_model_version="a", propensity_score=0.5, affinity_score=0.5)
    df = pl.DataFrame({
        "listener_id": list(range(n)) + [n + t for t in twice], "track_id": list(range(n)) + list(twice),
        "score": [((i * 7919) % 1000) / 1000 for i in range(n)] + [0.999] * len(twice)}).with_columns(
        channel=pl.lit("email"), marketplace=pl.lit("US"), artist_id=pl.lit(7), expires_at=pl.lit(LIVE),
        **{k: pl.lit(v) for k, v in small.items()}).select(CANDIDATE_COLUMNS).cast(CANDIDATE_SCHEMA)
    if request.node.callspec.params["store"] == "dynamodb-moto":
        pytest.skip("moto's server takes >10 min for 100,000 items on 2 cores; DynamoDB Local is the tier for this")
    started = time.perf_counter()
    assert store.put_batch("prog", "2025-06-01", df) == df.height
    assert store.count("prog", "2025-06-01", now=NOW) == df.height
    rows = store.for_channel("prog", "email", limit=10 * n, max_per_track=1, now=NOW)
    assert len(rows) == n and {r["track_id"] for r in rows} == set(range(n))  # each doubled track cut to one
    assert all(r["listener_id"] >= n for r in rows if r["track_id"] in twice)  # ... its best row (0.999)
    if hasattr(store, "client"):  # DynamoDB: every stored item is under the item limit, as DynamoDB sizes it
        from music_feedback.store.dynamodb.size import ITEM_LIMIT, item_size
        # the registry's items (its head and the per-track count items), which grow with the tracks of a day,
        # and one page of the candidate rows, which do not: a full scan of 100,000 rows adds nothing
        client, sizes = store.client(), {}
        for pk in ("P#prog", "P#prog#B#2025-06-01#C"):
            kwargs = {"TableName": store.table_name, "KeyConditionExpression": "PK = :pk",
                      "ExpressionAttributeValues": {":pk": {"S": pk}}, "ConsistentRead": True}
            while True:
                page = client.query(**kwargs)
                sizes.update({(i["PK"]["S"], i["SK"]["S"]): item_size(i) for i in page["Items"]})
                if "LastEvaluatedKey" not in page:
                    break
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        assert len(sizes) > 2 and max(sizes.values()) < 100 * 1024  # a head and several count items
        rows = client.scan(TableName=store.table_name, Limit=1000)["Items"]
        assert len(rows) == 1000 and max(item_size(i) for i in rows) < ITEM_LIMIT
    print(f"100,000 tracks written and read back in {time.perf_counter() - started:.1f} s")
