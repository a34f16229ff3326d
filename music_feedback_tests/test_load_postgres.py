"""Copying an embedded warehouse into PostgreSQL (the Redshift stand-in): every table with its rows, in
one transaction; a column type it cannot map stops the copy with the column's name."""
from __future__ import annotations

import duckdb
import pytest

from music_feedback.warehouse.load_postgres import load_warehouse

pytestmark = pytest.mark.integration


def test_every_table_arrives_whole(postgres_warehouse, small_warehouse):
    with duckdb.connect(str(small_warehouse), read_only=True) as src:
        tables = [r[0] for r in src.execute("SELECT table_name FROM information_schema.tables "
                                            "WHERE table_schema = 'main'").fetchall()]
        want = {t: src.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0] for t in tables}
    conn = postgres_warehouse.connect()
    try:
        with conn.cursor() as cur:
            got = {}
            for t in tables:
                cur.execute(f'SELECT COUNT(*) FROM "{t}"')
                got[t] = cur.fetchone()[0]
    finally:
        conn.close()
    assert "track_plays" in got and got == want and want["track_plays"] > 0


def test_an_unmapped_type_is_named_and_nothing_is_written(postgres_server, tmp_path):
    path = tmp_path / "odd.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE a_first (x INTEGER); INSERT INTO a_first VALUES (1)")
        con.execute("CREATE TABLE b_odd (id BIGINT, payload BLOB); INSERT INTO b_odd VALUES (1, 'x'::BLOB)")
    postgres_server.create_database("odd")
    server = postgres_server.with_database("odd")
    with pytest.raises(ValueError, match="b_odd.payload has DuckDB type BLOB"):
        load_warehouse(path, server)
    conn = server.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM information_schema.tables WHERE table_name = 'a_first'")
            assert cur.fetchone()[0] == 0  # the table copied before the failure was rolled back
    finally:
        conn.close()
