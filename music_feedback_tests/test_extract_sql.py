"""The shipped extract query, bound for a batch day, against a tiny DuckDB track_plays table;
and the DuckDB warehouse adapter's errors."""
from __future__ import annotations

from datetime import date, datetime, timedelta

import duckdb
import pytest

from music_feedback.programs.loader import load_programs
from music_feedback.warehouse.duckdb_warehouse import DuckDBWarehouse
from music_feedback.warehouse.port import WarehouseError, bind_batch_window
from music_feedback.warehouse.schema import TABLES

pytestmark = pytest.mark.unit

D = date(2026, 11, 23)
COLUMNS = list(TABLES["track_plays"])


def day(offset: int, hour: int = 12, minute: int = 0, second: int = 0) -> datetime:
    d = D + timedelta(days=offset)
    return datetime(d.year, d.month, d.day, hour, minute, second)


def play(listener_id: int, played_at: datetime, release: date = D - timedelta(days=2),
         completion: float = 0.97, play_count: int = 1) -> tuple:
    """A track_plays row, in schema column order; the track id is listener id * 10."""
    return (listener_id, listener_id * 10, play_count, completion, 0.8, 200_000, played_at, release, "pop", 1)


# listener_id identifies each case
INCLUDED = {
    1: play(1, day(0)),
    2: play(2, day(0, 0, 0, 0)),  # the first instant of D
    3: play(3, day(0, 23, 59, 59)),  # the last second of D
    4: play(4, day(0), release=D - timedelta(days=6)),  # oldest release in the window
    5: play(5, day(0), release=D),  # released on D
    6: play(6, day(0), completion=0.95),  # completion threshold
    7: play(7, day(0), completion=1.0),
    8: play(8, day(0), play_count=1),
    9: play(9, day(0), play_count=4),
}
EXCLUDED = {
    21: play(21, day(-1)),
    22: play(22, day(-1, 23, 59, 59)),  # the last second before D
    23: play(23, day(1)),
    24: play(24, day(1, 0, 0, 0)),  # batch_end is exclusive
    25: play(25, day(0), release=D - timedelta(days=7)),
    26: play(26, day(0), completion=0.94),
    27: play(27, day(0), completion=0.9499),
    28: play(28, day(0), play_count=0),
    29: play(29, day(0), release=D + timedelta(days=1)),  # "released" after the day: not new, malformed
}
# Rows of D the extract's WHERE drops because a filtered field is null: they must be set aside, not vanish.
MALFORMED = {
    31: play(31, day(0), completion=None),
    32: play(32, day(0), play_count=None),
    33: play(33, day(0), release=None),
    29: EXCLUDED[29],
}
NOT_OURS = {
    41: play(41, day(-1), completion=None),  # another day
    42: play(42, day(0), release=D - timedelta(days=30), completion=None),  # an old track: not in the batch
}


def make_warehouse(path, rows) -> None:
    cols = ", ".join(f'"{c}" {t}' for c, t in TABLES["track_plays"].items())
    with duckdb.connect(str(path)) as con:
        con.execute(f"CREATE TABLE track_plays ({cols})")
        if rows:
            con.executemany(f"INSERT INTO track_plays VALUES ({', '.join('?' * len(COLUMNS))})", list(rows))


@pytest.fixture(scope="module")
def program(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    for var in ("MUSIC_FEEDBACK_PROGRAMS_DIR", "MUSIC_FEEDBACK_PROGRAM"):
        mp.delenv(var, raising=False)
    (prog,) = [p for p in load_programs() if p.program_id == "music-feedback"]
    mp.undo()
    return prog


@pytest.fixture
def warehouse(tmp_path):
    path = tmp_path / "w.duckdb"
    rows = {**INCLUDED, **EXCLUDED, **MALFORMED, **NOT_OURS}
    make_warehouse(path, rows.values())
    return DuckDBWarehouse(path=str(path))


def test_bind_batch_window_replaces_every_parameter(program):
    sql = bind_batch_window(program.connector.config.query, D)
    assert ":batch_start" not in sql and ":batch_end" not in sql and ":release_window_start" not in sql
    assert "DATE '2026-11-23'" in sql and "DATE '2026-11-24'" in sql and "DATE '2026-11-17'" in sql


def test_extract_selects_exactly_the_qualifying_plays(program, warehouse):
    out = warehouse.fetch(bind_batch_window(program.connector.config.query, D))
    assert sorted(out["listener_id"].to_list()) == sorted(INCLUDED)


def test_malformed_rows_of_the_day_are_found_and_set_aside(program, warehouse):
    from music_feedback.transforms.validate import malformed_rows_query, split_invalid
    dropped = warehouse.fetch(bind_batch_window(malformed_rows_query("track_plays"), D))
    assert sorted(dropped["listener_id"].to_list()) == sorted(MALFORMED)
    valid, rejected = split_invalid(dropped)
    assert valid.height == 0
    assert dict(rejected.select("listener_id", "reason").iter_rows()) == {
        31: "null_completion_rate", 32: "null_play_count", 33: "null_track_release_date",
        29: "released_after_play"}


def test_extract_columns(program, warehouse):
    out = warehouse.fetch(bind_batch_window(program.connector.config.query, D))
    assert out.columns == ["listener_id", "track_id", "play_count", "completion_rate", "engagement_score",
                           "genre", "artist_id", "track_release_date", "played_at"]
    row = out.filter(out["listener_id"] == 9).row(0, named=True)
    assert row["play_count"] == 4 and row["track_id"] == 90
    assert row["played_at"] == day(0) and row["track_release_date"] == D - timedelta(days=2)


def test_extract_window_moves_with_the_batch_day(program, warehouse):
    out = warehouse.fetch(bind_batch_window(program.connector.config.query, D + timedelta(days=1)))
    # plays of D+1 of tracks released D-2: listeners 23, 24
    assert sorted(out["listener_id"].to_list()) == [23, 24]
    out = warehouse.fetch(bind_batch_window(program.connector.config.query, D - timedelta(days=1)))
    assert sorted(out["listener_id"].to_list()) == [21, 22]


def test_extract_on_empty_table(program, tmp_path):
    path = tmp_path / "empty.duckdb"
    make_warehouse(path, [])
    out = DuckDBWarehouse(path=str(path)).fetch(bind_batch_window(program.connector.config.query, D))
    assert out.height == 0 and "listener_id" in out.columns


# ---------------------------------------------------------------- adapter errors

def test_missing_file_says_how_to_build_it(tmp_path):
    wh = DuckDBWarehouse(path=str(tmp_path / "nope.duckdb"))
    with pytest.raises(WarehouseError, match="music-feedback warehouse seed"):
        wh.fetch("SELECT 1")
    with pytest.raises(WarehouseError, match="nope.duckdb"):
        wh.require("track_plays")
    assert not (tmp_path / "nope.duckdb").exists()  # reading does not create it


def test_require_missing_table_names_connector_and_table(warehouse):
    with pytest.raises(WarehouseError) as err:
        warehouse.require("listeners", connector="redshift-music-streams")
    assert "redshift-music-streams" in str(err.value)
    assert "'listeners'" in str(err.value)
    assert "music-feedback warehouse seed" in str(err.value)


def test_require_missing_column_names_it(tmp_path):
    path = tmp_path / "w.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE track_plays (listener_id BIGINT, track_id BIGINT, played_at TIMESTAMP)")
    wh = DuckDBWarehouse(path=str(path))
    wh.require("track_plays", ["listener_id", "played_at"])  # the columns asked for are there
    with pytest.raises(WarehouseError) as err:
        wh.require("track_plays", ["listener_id", "completion_rate"], connector="redshift-music-streams")
    message = str(err.value)
    assert "completion_rate" in message and "track_plays" in message and "redshift-music-streams" in message
    assert "listener_id" not in message.split("column(s)")[-1]
    with pytest.raises(WarehouseError, match="play_count"):  # without a list: the whole contract
        wh.require("track_plays")


def test_require_passes_on_full_table(warehouse):
    warehouse.require("track_plays")
    assert warehouse.columns_of("track_plays") == set(COLUMNS)
    assert warehouse.columns_of("listeners") == set()


def test_fetch_errors_name_warehouse(warehouse):
    with pytest.raises(WarehouseError, match="does_not_exist"):
        warehouse.fetch("SELECT * FROM does_not_exist")
    with pytest.raises(WarehouseError, match="a column the query reads is missing"):
        warehouse.fetch("SELECT bogus_column FROM track_plays")


def test_meta_empty_for_foreign_warehouse(warehouse):
    assert warehouse.meta() == {}
