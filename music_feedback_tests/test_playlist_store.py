"""The playlist store's contract: every adapter passes it (SQLite is the embedded one; DynamoDB, the one every
task of a cluster shares, on moto's server and on DynamoDB Local)."""
from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import polars as pl
import pytest

from music_feedback.playlists.membership import changes
from music_feedback.playlists.scoring import track_scores
from music_feedback.playlists.store import AUDIT_SCHEMA, MEMBERS_SCHEMA, SQLitePlaylistStore
from music_feedback.programs.model import PlaylistSettings
from music_feedback_tests.test_playlists import DAY, NOW, answers

pytestmark = pytest.mark.unit


@pytest.fixture(params=["sqlite", pytest.param("dynamodb-moto", marks=pytest.mark.integration),
                        pytest.param("dynamodb-local", marks=pytest.mark.integration)])
def store(request, tmp_path):
    if request.param == "sqlite":
        return SQLitePlaylistStore(path=str(tmp_path / "playlists.sqlite"))
    from music_feedback.playlists.dynamodb import DynamoDBPlaylistStore
    endpoint = request.getfixturevalue("moto_endpoint" if request.param == "dynamodb-moto"
                                       else "dynamodb_local_endpoint")
    fresh = DynamoDBPlaylistStore(table_name=f"playlists-{uuid.uuid4().hex[:12]}", endpoint_url=endpoint)
    assert fresh.create_table()
    assert not fresh.create_table()  # idempotent
    fresh.check()
    return fresh


def _move(track: int, action: str, score: float = 0.8, market: str = "US", genre: str = "rock") -> dict:
    return {"marketplace": market, "genre": genre, "track_id": track, "track_name": f"T{track}",
            "action": action, "prior": 0.5, "up": 5.0, "down": 1.0, "votes": 6, "score": score}


def test_an_unknown_program_has_no_members_and_no_audit(store):
    assert store.members("nobody").is_empty() and store.members("nobody").schema == pl.Schema(MEMBERS_SCHEMA)
    assert store.members("nobody", before="2026-11-23").is_empty()
    assert store.audit("nobody").is_empty() and store.audit("nobody").schema == pl.Schema(AUDIT_SCHEMA)


def test_moves_need_evidence_and_have_hysteresis(store):
    settings = PlaylistSettings(minVotes=5, enterScore=0.7, leaveScore=0.55, priorStrength=2, halfLifeDays=1e9)
    loved = [(i, 1, 1, 0) for i in range(20)]
    few = [(i, 2, 1, 0) for i in range(3)]  # perfect but only 3 votes: stays out
    moves = changes(track_scores(answers(loved + few), NOW, settings), store.members("p"), settings)
    assert moves.select("track_id", "action").rows() == [(1, "enter")]
    assert store.apply("p", "2026-11-23", moves, NOW) == 1
    assert store.members("p")["track_id"].to_list() == [1]
    # the day again (a re-run) gives the same playlists and one audit row, not two
    store.apply("p", "2026-11-23", moves, NOW)
    assert store.members("p")["track_id"].to_list() == [1] and store.audit("p").height == 1
    # score falls to 0.6: between leave and enter, so it stays; below 0.55 it leaves, with an audit row
    mixed = loved[:12] + [(100 + i, 1, -1, 0) for i in range(8)]
    assert changes(track_scores(answers(mixed), NOW, settings), store.members("p"), settings).is_empty()
    bad = loved[:5] + [(100 + i, 1, -1, 0) for i in range(15)]
    leave = changes(track_scores(answers(bad), NOW, settings), store.members("p"), settings)
    store.apply("p", "2026-11-24", leave, NOW + DAY)
    audit = store.audit("p")
    assert store.members("p").is_empty() and audit["action"].to_list() == ["enter", "leave"]
    assert audit.schema == pl.Schema(AUDIT_SCHEMA)
    assert audit.row(1, named=True)["votes"] == 20 and audit["at"].to_list() == [NOW, NOW + DAY]


def test_an_older_day_run_again_after_newer_ones_leaves_the_playlists_of_a_run_in_order(store):
    """Day A enters track 1; day B takes it out and enters 2. Running A again (a backfill) must not put 1
    back: its moves were decided against the playlists before A, and B's later move still stands."""
    day_a = pl.DataFrame([_move(1, "enter")])
    day_b = pl.DataFrame([_move(1, "leave", 0.5), _move(2, "enter")])
    store.apply("p", "2026-11-22", day_a, NOW)
    store.apply("p", "2026-11-23", day_b, NOW + DAY)
    in_order = store.members("p")
    assert in_order.select("track_id", "since").rows() == [(2, "2026-11-23")]
    assert store.members("p", before="2026-11-23").select("track_id", "since").rows() == [(1, "2026-11-22")]
    assert store.members("p", before="2026-11-22").is_empty()

    store.apply("p", "2026-11-22", day_a, NOW + 5 * DAY)  # the backfill
    assert store.members("p").equals(in_order)
    assert store.audit("p").select("run_date", "track_id", "action").rows() == [
        ("2026-11-22", 1, "enter"), ("2026-11-23", 1, "leave"), ("2026-11-23", 2, "enter")]  # in day order

    # another program, its days applied out of order, ends where the first did, and neither sees the other
    store.apply("q", "2026-11-23", day_b, NOW)
    store.apply("q", "2026-11-22", day_a, NOW)
    assert store.members("q").equals(in_order)
    assert store.audit("p").height == 3 and store.audit("q").height == 3


def test_members_are_ordered_and_typed_and_keep_every_value(store):
    moves = pl.DataFrame([_move(t, "enter", score=s, market=m, genre=g)
                          for t, s, m, g in [(1, 0.75, "US", "rock"), (2, 0.9, "US", "rock"), (3, 0.8, "DE", "pop"),
                                             (4, 0.8, "DE", "pop"), (5, 1 / 3, "US", "jazz")]])
    moves = moves.with_columns(pl.when(pl.col("track_id") == 5).then(None).otherwise(pl.col("track_name"))
                               .alias("track_name"))
    store.apply("p", "2026-11-23", moves, NOW)
    members = store.members("p")
    assert members.schema == pl.Schema(MEMBERS_SCHEMA)
    assert members.select("marketplace", "genre", "track_id").rows() == [
        ("DE", "pop", 3), ("DE", "pop", 4), ("US", "jazz", 5), ("US", "rock", 2), ("US", "rock", 1)]
    jazz = members.filter(pl.col("track_id") == 5).row(0, named=True)
    assert jazz["score"] == 1 / 3 and jazz["track_name"] is None and jazz["since"] == "2026-11-23"  # exact


def test_a_day_of_many_moves_replaces_its_earlier_run_exactly(store):
    first = pl.DataFrame([_move(t, "enter", score=0.7 + t / 1000) for t in range(130)])
    store.apply("p", "2026-11-23", first, NOW)
    assert store.members("p").height == 130 and store.audit("p").height == 130
    again = pl.DataFrame([_move(t, "enter") for t in range(100, 160)])  # the re-run decided otherwise
    store.apply("p", "2026-11-23", again, NOW + 1)
    assert sorted(store.members("p")["track_id"].to_list()) == list(range(100, 160))
    assert store.audit("p").height == 60 and set(store.audit("p")["at"]) == {NOW + 1}
    store.apply("p", "2026-11-23", again.clear(), NOW + 2)  # a re-run with no moves: the day moved nothing
    assert store.members("p").is_empty() and store.audit("p").is_empty()


def test_days_applied_at_once_lose_no_move(store):
    """Backfilled days (or the schedule and a recount) moving one program at the same time: every day's moves
    stand, and the members are those of a run in day order."""
    days = [f"2026-11-{d:02d}" for d in range(10, 18)]
    moves = {d: pl.DataFrame([_move(100 * i + t, "enter") for t in range(3)]) for i, d in enumerate(days)}
    with ThreadPoolExecutor(max_workers=4) as pool:
        assert sum(pool.map(lambda d: store.apply("p", d, moves[d], NOW), days)) == 24
    assert sorted(store.members("p")["track_id"]) == sorted(100 * i + t for i in range(8) for t in range(3))
    assert store.audit("p")["run_date"].to_list() == [d for d in days for _ in range(3)]


@pytest.mark.integration
def test_dynamodb_resends_unprocessed_items(moto_endpoint):
    from music_feedback.playlists.dynamodb import DynamoDBPlaylistStore
    from music_feedback_tests.test_dynamodb_store import DropItems
    store = DynamoDBPlaylistStore(table_name=f"playlists-{uuid.uuid4().hex[:12]}", endpoint_url=moto_endpoint)
    store.create_table()
    fault = DropItems(store.client(), drop=7, times=3)
    try:
        store.apply("p", "2026-11-23", pl.DataFrame([_move(t, "enter") for t in range(60)]), NOW)
    finally:
        fault.remove()
    assert fault.calls == 3
    assert store.members("p").height == 60 and store.audit("p").height == 60


@pytest.mark.integration
def test_dynamodb_a_missing_table_names_it(moto_endpoint):
    from botocore.exceptions import ClientError
    from music_feedback.playlists.dynamodb import DynamoDBPlaylistStore
    store = DynamoDBPlaylistStore(table_name="no-such-playlists", endpoint_url=moto_endpoint)
    with pytest.raises(ClientError, match="ResourceNotFound"):
        store.check()
