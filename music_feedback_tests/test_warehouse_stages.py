"""The batch's warehouse-side stages under a warehouse that cannot hold the day: the stage fails with
DuckDB's own message and what to change, and leaves nothing half written where the IO manager keeps it."""
from __future__ import annotations

import pytest
from dagster import instance_for_test

from music_feedback import runner
from music_feedback.definitions import build_definitions
from music_feedback.programs.loader import load_programs
from music_feedback_tests.conftest import BATCH_DAY

pytestmark = pytest.mark.graph


def test_a_warehouse_out_of_memory_fails_the_stage_naming_the_fix(data_home, monkeypatch):
    program = load_programs()[0]
    monkeypatch.setenv("MUSIC_FEEDBACK_DUCKDB_MEMORY_LIMIT", "4MB")
    with instance_for_test() as instance:
        defs = build_definitions()
        runner.ensure_models(defs, program, instance, day=BATCH_DAY)
        result = runner.run_batch(defs, program, BATCH_DAY, instance)
    assert not result.success
    error = str(result.failure)
    assert "ran out of memory for the day: Out of Memory Error" in error
    assert "MUSIC_FEEDBACK_DUCKDB_MEMORY_LIMIT" in error and "MUSIC_FEEDBACK_DUCKDB_SPILL_DIR" in error
    stages = data_home / "assets" / program.slug
    written = sorted(p.relative_to(stages).as_posix() for p in stages.rglob("*") if p.is_file()) if stages.exists() else []
    assert not [p for p in written if p.endswith((".tmp", ".duckdb.parquet"))], written  # no staging file left
    # the stage that ran out wrote nothing; the one before it (the extract fits in 4 MB) stays whole
    assert not [p for p in written if p.startswith(("unified_candidates/", "filtered_candidates/"))], written
    assert f"raw_streams/{BATCH_DAY}.parquet" in written


@pytest.mark.integration
def test_a_stage_session_streams_its_steps_to_disk_and_leaves_nothing(small_warehouse, tmp_path):
    """What `create` makes is Parquet in a scratch folder under the spill folder, read back as a view;
    closing the session removes it; `output` writes through DuckDB's own Parquet writer to a local path,
    and as Arrow chunks to anything else (a buffer, as the S3 IO manager gives)."""
    import io

    import polars as pl

    from music_feedback.warehouse.duckdb_warehouse import DuckDBWarehouse
    spill = tmp_path / "spill"
    wh = DuckDBWarehouse(path=str(small_warehouse), spill_dir=str(spill), memory_limit="64MB")
    with wh.stage_session() as stage:
        stage.create("pairs", "SELECT listener_id, COUNT(*) AS n FROM track_plays GROUP BY listener_id")
        assert [p.suffix for p in next(spill.glob("stage-*")).iterdir()] == [".parquet"]
        count = stage.fetch("SELECT COUNT(*) AS c FROM pairs")["c"][0]
        local = stage.output("SELECT * FROM pairs ORDER BY listener_id", ["pairs"], "p")
        local.write(str(tmp_path / "pairs.parquet"))
        buffer = io.BytesIO()
        chunked = stage.output("SELECT * FROM pairs ORDER BY listener_id", ["pairs"], "p")
        chunked.write(buffer)
    assert not list(spill.glob("stage-*"))
    assert local.rows == chunked.rows == count > 100
    assert pl.read_parquet(tmp_path / "pairs.parquet").equals(pl.read_parquet(io.BytesIO(buffer.getvalue())))
    assert local.metadata()["dagster/row_count"] == count and local.sample.height == 5


@pytest.mark.unit
def test_a_stage_session_on_a_missing_or_unreadable_warehouse_names_the_fix(tmp_path):
    """The session attaches the file itself (no extra open first): either failure still names the command
    that fixes it, and leaves no scratch folder behind."""
    from music_feedback.warehouse.duckdb_warehouse import DuckDBWarehouse
    from music_feedback.warehouse.port import WarehouseError
    spill = tmp_path / "spill"
    missing = DuckDBWarehouse(path=str(tmp_path / "none.duckdb"), spill_dir=str(spill))
    with pytest.raises(WarehouseError, match="does not exist: build it with `music-feedback warehouse seed`"):
        with missing.stage_session():
            pass
    garbage = tmp_path / "garbage.duckdb"
    garbage.write_bytes(b"not a database" * 1000)
    with pytest.raises(WarehouseError, match=r"cannot be opened \(.*\); rebuild it with "
                                             r"`music-feedback warehouse seed --force`"):
        with DuckDBWarehouse(path=str(garbage), spill_dir=str(spill)).stage_session():
            pass
    assert not list(spill.glob("stage-*"))
