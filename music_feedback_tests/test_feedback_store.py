"""The feedback store's contract: every adapter passes it (SQLite is the embedded one)."""
from __future__ import annotations

import uuid

import polars as pl
import pytest

from music_feedback.feedback import OptedOutError, Submission, SubmissionConflict
from music_feedback.feedback.port import LEDGER_SCHEMA
from music_feedback.feedback.sqlite_store import SQLiteFeedbackStore

pytestmark = pytest.mark.unit

P, DAY = "music-feedback", "2026-11-23"


@pytest.fixture(params=["sqlite", pytest.param("dynamodb-moto", marks=pytest.mark.integration),
                        pytest.param("dynamodb-local", marks=pytest.mark.integration)])
def store(request, tmp_path):
    if request.param == "sqlite":
        return SQLiteFeedbackStore(path=str(tmp_path / "feedback.sqlite"))
    from music_feedback.feedback.dynamodb import DynamoDBFeedbackStore
    endpoint = request.getfixturevalue("moto_endpoint" if request.param == "dynamodb-moto"
                                       else "dynamodb_local_endpoint")
    fresh = DynamoDBFeedbackStore(table_name=f"feedback-{uuid.uuid4().hex[:12]}", endpoint_url=endpoint)
    # The suite's clock is 1970: with TTL on, DynamoDB Local would delete its events as they are written.
    assert fresh.create_tables(ttl=False) == [fresh.table_name]
    fresh.check()
    return fresh


def ledger(rows: list[tuple[int, int, str]], channel: str = "email") -> pl.DataFrame:
    return pl.DataFrame([{"batch_date": DAY, "listener_id": l, "track_id": t, "channel": channel, "state": s,
                          "campaign": "US-rock", "marketplace": "US", "genre": "rock", "track_name": f"T{t}",
                          "artist_id": 1, "score": 0.9, "send_at": 100.0, "send_before": 200.0}
                         for l, t, s in rows], schema=LEDGER_SCHEMA)


def sub(listener=1, track=10, rating=1, sid="sub-00001", channel="email", **kw) -> Submission:
    return Submission(P, listener, track, rating, channel, DAY, sid, kw.pop("at", 150.0), **kw)


def test_plan_is_idempotent_and_keeps_states(store):
    assert store.plan(P, ledger([(1, 10, "pending"), (2, 10, "held_out")])) == 2
    assert store.claim(P, DAY, "email", [(1, 10)], 120.0) == [(1, 10)]
    assert store.plan(P, ledger([(1, 10, "pending"), (2, 10, "held_out"), (3, 10, "pending")])) == 1
    assert store.ledger_counts(P) == {"held_out": 1, "pending": 1, "sending": 1}
    with pytest.raises(ValueError, match="pending or held_out"):
        store.plan(P, ledger([(4, 10, "sent")]))


def test_claim_is_a_compare_and_set(store):
    store.plan(P, ledger([(1, 10, "pending"), (2, 10, "pending")]))
    assert store.claim(P, DAY, "email", [(1, 10), (2, 10)], 120.0) == [(1, 10), (2, 10)]
    assert store.claim(P, DAY, "email", [(1, 10), (2, 10)], 121.0) == []  # a second sender gets nothing


def test_settle_and_retry_and_contacts(store):
    store.plan(P, ledger([(1, 10, "pending"), (2, 10, "pending"), (3, 10, "pending")]))
    store.claim(P, DAY, "email", [(1, 10), (2, 10), (3, 10)], 120.0)
    store.settle(P, DAY, "email", [((1, 10), "sent", "", "<m1@x>"), ((2, 10), "pending", "SMTP 451 busy", None),
                                   ((3, 10), "failed", "SMTP 550 no such user", None)], 121.0)
    row = store.ledger_row(P, DAY, 3, 10, "email")
    assert row["state"] == "failed" and row["reason"] == "SMTP 550 no such user" and row["attempts"] == 1
    assert sorted(store.due(P, DAY, "email")["listener_id"].to_list()) == [2]
    contacts = store.contacts(P, 0, 1_000)
    assert contacts.to_dicts() == [{"listener_id": 1, "requests": 1}]  # a retry or failure is no contact
    assert store.contacts(P, 122, 1_000).is_empty()


def test_an_unknown_send_stays_a_contact_until_resolved(store):
    """unknown: the service may have taken it. It counts against the cap, is not due, and resolves to sent
    (still the contact its claim made), failed, or pending (due again, no contact); only unknown rows move."""
    store.plan(P, ledger([(i, 10, "pending") for i in (1, 2, 3, 4)]))
    store.claim(P, DAY, "email", [(1, 10), (2, 10), (3, 10), (4, 10)], 120.0)
    store.settle(P, DAY, "email", [((k, 10), "unknown", "SES read timeout", f"<m{k}@x>") for k in (1, 2, 3)]
                 + [((4, 10), "sent", "", "<m4@x>")], 121.0)
    assert store.ledger_counts(P, DAY, "email") == {"sent": 1, "unknown": 3}
    assert store.due(P, DAY, "email").is_empty()
    assert sorted(store.contacts(P, 0, 1_000)["listener_id"].to_list()) == [1, 2, 3, 4]
    unknown = store.unknown(P, DAY, "email")
    assert unknown.select("listener_id", "message_id").rows() == [(1, "<m1@x>"), (2, "<m2@x>"), (3, "<m3@x>")]
    assert unknown["updated_at"].to_list() == [121.0] * 3 and unknown["marketplace"].to_list() == ["US"] * 3
    assert store.resolve(P, DAY, "email", [((1, 10), "sent", ""), ((2, 10), "pending", "no Send event"),
                                           ((3, 10), "failed", "SES Reject"), ((4, 10), "pending", "")], 130.0) == 3
    assert store.ledger_row(P, DAY, 4, 10, "email")["state"] == "sent"  # not unknown: untouched
    assert store.ledger_counts(P, DAY, "email") == {"failed": 1, "pending": 1, "sent": 2}
    assert store.due(P, DAY, "email")["listener_id"].to_list() == [2]
    contacts = store.contacts(P, 0, 1_000).sort("listener_id")
    assert contacts["listener_id"].to_list() == [1, 4]
    assert store.contacts(P, 120, 120.5)["listener_id"].to_list() == [1]  # kept its claim's time
    assert store.unknown(P, DAY, "email").is_empty()


def test_expire_records_the_reason(store):
    store.plan(P, ledger([(1, 10, "pending")]))
    assert store.expire(P, DAY, "email", [(1, 10)], "too late", 300.0) == 1
    assert store.ledger_row(P, DAY, 1, 10, "email")["state"] == "expired"
    assert store.due(P, DAY, "email").is_empty()


def test_one_answer_per_pair_retries_idempotent_conflicts_refused(store):
    store.plan(P, ledger([(1, 10, "pending")]) .vstack(ledger([(1, 10, "pending")], "voice-assistant")))
    store.claim(P, DAY, "email", [(1, 10)], 120.0)
    store.settle(P, DAY, "email", [((1, 10), "sent", "", "<m@x>")], 121.0)
    first = store.submit(sub(tags=("rock",), comment="great"))
    assert first.outcome == "created" and first.feedback["delivered_at"] == 121.0
    assert store.submit(sub(tags=("rock",), comment="great")).outcome == "unchanged"
    with pytest.raises(SubmissionConflict):
        store.submit(sub(rating=-1))
    again = store.submit(sub(rating=-1, sid="sub-00002", at=160.0))
    assert again.outcome == "updated" and again.feedback["revisions"] == 2
    assert store.track_metrics(P, 10) == {"thumbs_up": 0, "thumbs_down": 1, "responses": 1}
    assert store.ledger_row(P, DAY, 1, 10, "voice-assistant")["state"] == "cancelled"
    assert store.ledger_row(P, DAY, 1, 10, "email")["answered_at"] == 150.0
    kinds = [e["kind"] for e in store.events(P)]
    assert kinds == ["feedback.submitted", "feedback.updated"]
    assert store.answered_pairs(P, 155.0).to_dicts() == [{"listener_id": 1, "track_id": 10}]
    assert store.answered_pairs(P, 149.0).is_empty()


def test_opted_out_listener_stores_nothing(store):
    store.plan(P, ledger([(1, 10, "pending")]))
    assert store.opt_out(1, "unsubscribe link", 100.0) is True
    assert store.opt_out(1, "again", 101.0) is False
    assert store.ledger_row(P, DAY, 1, 10, "email")["state"] == "cancelled"
    with pytest.raises(OptedOutError):
        store.submit(sub())
    assert store.feedback(P, 1, 10) is None and store.events(P) == []
    assert store.suppressed([1, 2]) == {1} and store.suppressed() == {1}


def test_outbox_publishing(store):
    store.record_event(P, "open", {"listener_id": 1}, 100.0)
    store.record_event(P, "click", {"listener_id": 1}, 101.0)
    pending = store.unpublished_events()
    assert [e["kind"] for e in pending] == ["open", "click"] and pending[0]["detail"] == {"listener_id": 1}
    assert store.mark_published([pending[0]["id"]], 102.0) == 1
    assert [e["kind"] for e in store.unpublished_events()] == ["click"]


def test_voice_contact_recorded_once(store):
    row = {"listener_id": 5, "track_id": 50, "track_name": "T", "genre": "pop", "marketplace": "US", "score": 0.8,
           "artist_id": 1}
    assert store.record_contact(P, DAY, "voice-assistant", row, "sent", 100.0) == "sent"
    assert store.record_contact(P, DAY, "voice-assistant", row, "held_out", 101.0) == "sent"
    assert store.contacts(P, 0, 1_000).to_dicts() == [{"listener_id": 5, "requests": 1}]


def voice_row(listener: int, track: int) -> dict:
    return {"listener_id": listener, "track_id": track, "track_name": "T", "genre": "pop", "marketplace": "US",
            "score": 0.8, "artist_id": 1}


def test_a_capped_contact_counts_every_channel_and_refuses_past_the_limit(store):
    store.plan(P, ledger([(7, 10, "pending")]))
    store.claim(P, DAY, "email", [(7, 10)], 120.0)
    store.settle(P, DAY, "email", [((7, 10), "sent", "", "<m@x>")], 121.0)  # contacted at 121
    cap = (2, 0.0, 1_000.0)
    assert store.record_contact(P, DAY, "voice-assistant", voice_row(7, 11), "sent", 130.0, cap=cap) == "sent"
    assert store.record_contact(P, DAY, "voice-assistant", voice_row(7, 12), "sent", 131.0, cap=cap) is None
    assert store.ledger_row(P, DAY, 7, 12, "voice-assistant") is None
    # the pair already contacted is not a new contact: its state comes back, the cap does not refuse it
    assert store.record_contact(P, DAY, "voice-assistant", voice_row(7, 11), "sent", 132.0, cap=cap) == "sent"
    # outside the window the earlier contacts do not count
    assert store.record_contact(P, DAY, "voice-assistant", voice_row(7, 12), "sent", 2_000.0,
                                cap=(2, 1_500.0, 3_000.0)) == "sent"
    assert store.contacts_of(P, 7, 0, 1_000) == 2
    assert store.contacts_among(P, [7, 7, 8], 0, 1_000) == {7: 2, 8: 0}


def test_concurrent_capped_contacts_never_pass_the_limit(store):
    """Twelve prompts about different tracks of one listener at once: exactly the limit get through."""
    from concurrent.futures import ThreadPoolExecutor
    cap = (3, 0.0, 1_000.0)

    def prompt(track: int) -> str | None:
        return store.record_contact(P, DAY, "voice-assistant", voice_row(9, track), "sent", 100.0 + track, cap=cap)
    with ThreadPoolExecutor(12) as pool:
        results = list(pool.map(prompt, range(1, 13)))
    assert results.count("sent") == 3 and results.count(None) == 9
    assert store.contacts_of(P, 9, 0, 1_000) == 3


def test_a_deleted_store_file_is_not_written_through_an_old_connection(tmp_path):
    """A cached connection must follow the path: writes after the file is removed go to the new file."""
    store = SQLiteFeedbackStore(path=str(tmp_path / "feedback.sqlite"))
    store.plan(P, ledger([(1, 10, "pending")]))
    for suffix in ("", "-wal", "-shm"):
        (tmp_path / f"feedback.sqlite{suffix}").unlink(missing_ok=True)
    store.plan(P, ledger([(2, 10, "pending")]))
    fresh = SQLiteFeedbackStore(path=str(tmp_path / "feedback.sqlite"))
    assert fresh.ledger_counts(P) == {"pending": 1}


def test_contacts_of_one_listener(store):
    store.plan(P, ledger([(1, 10, "pending"), (1, 11, "pending"), (2, 10, "pending")]))
    store.claim(P, DAY, "email", [(1, 10), (1, 11), (2, 10)], 120.0)
    store.settle(P, DAY, "email", [((1, 10), "sent", "", None), ((1, 11), "failed", "no", None),
                                   ((2, 10), "sent", "", None)], 121.0)
    assert store.contacts_of(P, 1, 0, 1_000) == 1 and store.contacts_of(P, 2, 122, 1_000) == 0


def test_two_senders_racing_claim_each_request_once(store, request):
    from concurrent.futures import ThreadPoolExecutor
    if request.node.callspec.params["store"] == "dynamodb-moto":
        pytest.skip("moto applies a transaction without isolating it from concurrent ones; DynamoDB Local runs this")
    keys = [(i, 10) for i in range(1, 41)]
    store.plan(P, ledger([(lid, tid, "pending") for lid, tid in keys]))
    with ThreadPoolExecutor(4) as pool:
        won = list(pool.map(lambda n: store.claim(P, DAY, "email", keys, 120.0 + n), range(4)))
    assert sorted(k for w in won for k in w) == keys  # every request claimed by exactly one sender
    assert store.ledger_counts(P, DAY, "email") == {"sending": 40}


def test_outbox_keeps_the_order_of_many_events_across_programs(store):
    for i in range(30):
        store.record_event(P if i % 3 else "other-program", "open", {"n": i}, 100.0 + i)
    pending = store.unpublished_events(limit=1000)
    assert [e["detail"]["n"] for e in pending] == list(range(30))
    assert [e["id"] for e in pending] == sorted(e["id"] for e in pending)
    assert [e["detail"]["n"] for e in store.unpublished_events(limit=5)] == [0, 1, 2, 3, 4]
    assert store.mark_published([e["id"] for e in pending[:10]], 200.0) == 10
    assert store.mark_published([pending[0]["id"]], 201.0) == 0  # already published
    assert [e["detail"]["n"] for e in store.unpublished_events()] == list(range(10, 30))
    count, newest = store.events_since(P, "op", pending[5]["id"])
    assert count == len([i for i in range(6, 30) if i % 3]) and newest == pending[29]["id"]
    assert len(store.events("other-program", "open")) == 10


def test_answers_report_the_answered_request(store):
    store.plan(P, ledger([(1, 10, "pending"), (2, 10, "pending")]))
    store.claim(P, DAY, "email", [(1, 10), (2, 10)], 120.0)
    store.settle(P, DAY, "email", [((1, 10), "sent", "", None), ((2, 10), "sent", "", None)], 121.0)
    store.submit(sub(listener=1, sid="a-1", at=150.0))
    store.submit(sub(listener=2, rating=-1, sid="a-2", at=170.0))
    got = store.answers(P, 160.0).to_dicts()
    assert got == [{"listener_id": 1, "track_id": 10, "rating": 1, "submitted_at": 150.0, "channel": "email",
                    "batch_date": DAY, "marketplace": "US", "genre": "rock", "track_name": "T10"}]
    assert store.answers(P, 1e12).height == 2 and store.contacts(P, 0, 1e12)["requests"].sum() == 2


def test_a_submission_id_is_scoped_to_its_listener(store):
    """Clients make their ids: another listener's same id is theirs, not a conflict (it was a 409)."""
    store.plan(P, ledger([(1, 10, "pending"), (2, 10, "pending")]))
    store.claim(P, DAY, "email", [(1, 10), (2, 10)], 120.0)
    store.settle(P, DAY, "email", [((1, 10), "sent", "", None), ((2, 10), "sent", "", None)], 121.0)
    assert store.submit(sub(listener=1, sid="same-id-1")).outcome == "created"
    assert store.submit(sub(listener=2, rating=-1, sid="same-id-1")).outcome == "created"
    assert store.submit(sub(listener=2, rating=-1, sid="same-id-1")).outcome == "unchanged"  # a retry
    with pytest.raises(SubmissionConflict):
        store.submit(sub(listener=2, rating=1, sid="same-id-1"))  # one id, one answer, per listener
    assert store.submit(Submission("other-program", 1, 10, -1, "email", DAY, "same-id-1", 151.0)).outcome == "created"
    assert store.feedback(P, 1, 10)["rating"] == 1 and store.feedback(P, 2, 10)["rating"] == -1
    assert store.track_metrics(P, 10) == {"thumbs_up": 1, "thumbs_down": 1, "responses": 2}


def test_a_store_of_global_submission_ids_is_migrated_in_place(tmp_path):
    """A feedback.sqlite made when submissions were keyed by the id alone: opening it moves the rows to the
    (program, listener, id) key, and what they recorded still holds (a retry is unchanged, a reuse a 409)."""
    import sqlite3
    from contextlib import closing

    path = tmp_path / "feedback.sqlite"
    old = SQLiteFeedbackStore(path=str(path))
    old.plan(P, ledger([(1, 10, "pending")]))
    first = sub(tags=("rock",), comment="great")
    old.submit(first)
    with closing(sqlite3.connect(path)) as conn:  # back to the earlier table, with its row
        rows = conn.execute("SELECT submission_id, program_id, listener_id, track_id, fingerprint FROM submissions")
        rows = rows.fetchall()
        conn.executescript("DROP TABLE submissions; CREATE TABLE submissions (submission_id TEXT PRIMARY KEY, "
                           "program_id TEXT NOT NULL, listener_id INTEGER NOT NULL, track_id INTEGER NOT NULL, "
                           "fingerprint TEXT NOT NULL) WITHOUT ROWID;")
        conn.executemany("INSERT INTO submissions VALUES (?, ?, ?, ?, ?)", rows)
        conn.commit()
    reopened = SQLiteFeedbackStore(path=f"{tmp_path}/./feedback.sqlite")  # another path string: a new connection
    assert reopened.submit(first).outcome == "unchanged"
    with pytest.raises(SubmissionConflict):
        reopened.submit(sub(rating=-1))
    assert reopened.submit(sub(listener=2, sid=first.submission_id)).outcome == "created"
    with closing(sqlite3.connect(path)) as conn:
        keys = [r[1] for r in conn.execute("PRAGMA table_info(submissions)") if r[5]]
        assert keys == ["program_id", "listener_id", "submission_id"]
        assert conn.execute("SELECT COUNT(*) FROM submissions").fetchone()[0] == 2
        assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE name LIKE 'submissions%'")] == [
            "submissions"]


@pytest.mark.integration
def test_a_dynamodb_submission_made_before_ids_were_scoped_is_still_a_retry(moto_endpoint):
    """Items written under the global SUB#{id} key are not read any more: the answer's own submission id
    still makes a retry of it unchanged and a reuse of it with another answer a conflict."""
    from music_feedback.feedback.dynamodb import DynamoDBFeedbackStore
    store = DynamoDBFeedbackStore(table_name=f"feedback-{uuid.uuid4().hex[:12]}", endpoint_url=moto_endpoint)
    store.create_tables()
    store.plan(P, ledger([(1, 10, "pending"), (2, 10, "pending")]))
    store.claim(P, DAY, "email", [(1, 10), (2, 10)], 120.0)
    store.settle(P, DAY, "email", [((1, 10), "sent", "", None), ((2, 10), "sent", "", None)], 121.0)
    first = sub(tags=("rock",), comment="great")
    assert store.submit(first).outcome == "created"
    client = store.client()
    key = {"PK": {"S": f"SUB#{P}#1#{first.submission_id}"}, "SK": {"S": "S"}}
    item = client.get_item(TableName=store.table_name, Key=key)["Item"]
    client.delete_item(TableName=store.table_name, Key=key)  # as if written under the old key
    client.put_item(TableName=store.table_name, Item={**item, "PK": {"S": f"SUB#{first.submission_id}"}})
    assert store.submit(first).outcome == "unchanged"
    with pytest.raises(SubmissionConflict):
        store.submit(sub(rating=-1))
    assert store.submit(sub(listener=2, sid=first.submission_id)).outcome == "created"
    assert store.feedback(P, 1, 10)["revisions"] == 1


def test_answering_a_pending_request_answers_it_and_cancels_the_pair_elsewhere(store):
    """A request still pending (the listener answered through the page before the mail was claimed, or by
    voice) is answered and cancelled in one step, and so is the pair's pending request on another channel
    (on DynamoDB this was one transaction naming the item twice: refused)."""
    store.plan(P, ledger([(1, 10, "pending")]))
    store.plan(P, ledger([(1, 10, "pending")], channel="voice-assistant"))
    assert store.submit(sub(at=150.0)).outcome == "created"
    email = store.ledger_row(P, DAY, 1, 10, "email")
    assert (email["state"], email["reason"], email["answered_at"]) == ("cancelled", "answered on email", 150.0)
    voice = store.ledger_row(P, DAY, 1, 10, "voice-assistant")
    assert (voice["state"], voice["reason"], voice["answered_at"]) == ("cancelled", "answered on email", None)
    assert store.claim(P, DAY, "email", [(1, 10)], 160.0) == []  # never sent after the answer
    assert store.submit(sub(at=150.0)).outcome == "unchanged"
    assert store.submit(sub(rating=-1, sid="sub-00002", at=170.0)).outcome == "updated"
    assert store.track_metrics(P, 10) == {"thumbs_up": 0, "thumbs_down": 1, "responses": 1}
    assert [e["kind"] for e in store.events(P)] == ["feedback.submitted", "feedback.updated"]


def test_events_since_a_time_and_tallies_of_many_listeners(store):
    """events(since=) returns what was made from then on (the funnel's bounded read); a track's tally sums
    the answers of many listeners (sharded counters on DynamoDB)."""
    day = 86_400.0
    for i, at in enumerate((1 * day + 5, 2 * day + 5, 3 * day + 5, 3 * day + 6)):
        store.record_event(P, "open", {"listener_id": i, "batch_date": DAY}, at)
    store.record_event(P, "click", {"listener_id": 9}, 3 * day + 7)
    assert [e["detail"]["listener_id"] for e in store.events(P, "open", since=2 * day + 5)] == [1, 2, 3]
    assert [e["kind"] for e in store.events(P, since=3 * day)] == ["open", "open", "click"]
    assert len(store.events(P, "open")) == 4
    count, newest = store.events_since(P, "op", store.events(P, "open", since=2 * day)[0]["id"])
    assert count == 2 and newest == store.events(P, "open")[-1]["id"]
    listeners = range(1, 41)
    store.plan(P, ledger([(lid, 10, "pending") for lid in listeners]))
    store.claim(P, DAY, "email", [(lid, 10) for lid in listeners], 120.0)
    store.settle(P, DAY, "email", [((lid, 10), "sent", "", None) for lid in listeners], 121.0)
    for lid in listeners:
        store.submit(sub(listener=lid, rating=1 if lid % 4 else -1, sid=f"s-{lid}", at=150.0 + lid))
    assert store.track_metrics(P, 10) == {"thumbs_up": 30, "thumbs_down": 10, "responses": 40}


@pytest.mark.integration
@pytest.mark.parametrize("server", ["moto_endpoint", "dynamodb_local_endpoint"])
def test_dynamodb_events_expire_are_sharded_by_day_and_read_by_day(server, request):
    """create_tables enables TTL on `ttl`; each event carries ttl = created_at + the retention, is indexed
    under EV#<program>#<day>#<shard>; a read since a time queries only the days from then on (never a Scan,
    never the program's whole history); events of the earlier layout are moved by the migration command."""
    from music_feedback.feedback.dynamodb import DynamoDBFeedbackStore
    from music_feedback.feedback.dynamodb.migrate import migrate_events
    store = DynamoDBFeedbackStore(table_name=f"feedback-{uuid.uuid4().hex[:12]}",
                                  endpoint_url=request.getfixturevalue(server), event_retention_days=30)
    store.create_tables()
    client = store.client()
    ttl = client.describe_time_to_live(TableName=store.table_name)["TimeToLiveDescription"]
    assert ttl["TimeToLiveStatus"] in ("ENABLED", "ENABLING") and ttl["AttributeName"] == "ttl"
    now = 2_000_000_000.0  # 2033: not expired on DynamoDB Local
    for d in range(5):
        for lid in range(20):
            store.record_event(P, "open", {"listener_id": lid, "batch_date": DAY}, now + d * 86_400 + lid)
    items = [i for i in client.scan(TableName=store.table_name)["Items"] if i["PK"]["S"].startswith("EVENT#")]
    assert len(items) == 100
    assert all(int(i["ttl"]["N"]) == int(float(i["created_at"]["N"])) + 30 * 86_400 for i in items)
    parts = {i["G2PK"]["S"] for i in items}
    assert len({p.split("#")[2] for p in parts}) == 5 and len(parts) > 5 * 4  # 5 days, spread over shards
    queried, scans = [], []

    def on_query(params, **kw):
        queried.append(params["ExpressionAttributeValues"])

    def on_scan(params, **kw):
        scans.append(params)
    client.meta.events.register("provide-client-params.dynamodb.Query", on_query)
    client.meta.events.register("provide-client-params.dynamodb.Scan", on_scan)
    try:
        got = store.events(P, "open", since=now + 3 * 86_400)
        count, newest = store.events_since(P, "open", got[0]["id"])
    finally:
        client.meta.events.unregister("provide-client-params.dynamodb.Query", on_query)
        client.meta.events.unregister("provide-client-params.dynamodb.Scan", on_scan)
    assert len(got) == 40 and count == 39 and newest == got[-1]["id"] and scans == []
    days = {v[":pk"]["S"].split("#")[2] for v in queried if ":pk" in v and v[":pk"]["S"].startswith("EV#")}
    assert len(days) == 2  # the last two days only
    # An event of the earlier layout: unsharded program partition, no ttl; the migration moves it.
    old = {**items[0], "PK": {"S": "EVENT#7"}, "id": {"N": "7"}, "G2PK": {"S": f"EVP#{P}"}, "G2SK": {"N": "7"},
           "created_at": {"N": str(now)}}
    old.pop("ttl")
    client.put_item(TableName=store.table_name, Item=old)
    assert len(store.events(P)) == 100
    assert migrate_events(store) == 1 and migrate_events(store) == 0
    assert len(store.events(P)) == 101 and store.events(P)[0]["id"] == 7
