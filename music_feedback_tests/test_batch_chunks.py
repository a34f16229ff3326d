"""The batch's later stages in bounded chunks (settings.batch_chunk_rows): the chunked path writes the same
rows and metadata as one chunk, for the features, the scoring and the candidate store."""
from __future__ import annotations

import shutil
import sqlite3
from datetime import datetime, timezone

import polars as pl
import pytest
from dagster import AssetSelection, instance_for_test, materialize
from polars.testing import assert_frame_equal

from music_feedback import runner, settings
from music_feedback.definitions import build_definitions
from music_feedback.programs.loader import load_programs
from music_feedback.scoring import features as f
from music_feedback.store.base import CANDIDATE_SCHEMA
from music_feedback.store.sqlite_store import SQLiteCandidateStore
from music_feedback.warehouse.duckdb_warehouse import DuckDBWarehouse
from music_feedback_tests.conftest import BATCH_DAY

STAGES = ("listener_features", "track_features", "scored_candidates", "stored_candidates")


@pytest.mark.unit
def test_chunk_rows_setting(monkeypatch):
    monkeypatch.delenv(settings.BATCH_CHUNK_ROWS_VAR, raising=False)
    assert settings.batch_chunk_rows() == settings.DEFAULT_BATCH_CHUNK_ROWS == 200_000
    monkeypatch.setenv(settings.BATCH_CHUNK_ROWS_VAR, "1000")
    assert settings.batch_chunk_rows() == 1000
    for bad in ("0", "many"):
        monkeypatch.setenv(settings.BATCH_CHUNK_ROWS_VAR, bad)
        with pytest.raises(ValueError, match=settings.BATCH_CHUNK_ROWS_VAR):
            settings.batch_chunk_rows()


@pytest.mark.unit
def test_id_chunks_bound_both_the_ids_and_their_span():
    ids = pl.Series([5, 1, 2, 2, 3, 40, 41, 100, None])
    chunks = f.id_chunks(ids, 2)
    assert [c.to_list() for c in chunks] == [[1, 2], [3, 5], [40, 41], [100]]  # spans of at most 2 x 2 ids
    assert [c.to_list() for c in f.id_chunks(ids, None)] == [[1, 2, 3, 5, 40, 41, 100]]
    assert [c.to_list() for c in f.id_chunks(pl.Series([], dtype=pl.Int64), 2)] == [[]]
    for c in f.id_chunks(pl.Series(range(0, 1000, 7)), 30):
        assert c.len() <= 30 and c[-1] - c[0] < 30 * f.SPAN_PER_ROW


@pytest.mark.unit
def test_feature_hydration_in_tiny_chunks_equals_one_chunk(small_warehouse):
    wh = DuckDBWarehouse(path=str(small_warehouse))
    program = load_programs()[0]
    listeners = wh.fetch("SELECT listener_id FROM listeners")["listener_id"].gather_every(3)
    tracks = wh.fetch("SELECT track_id FROM tracks")["track_id"].gather_every(2)
    with wh.session():  # as the features step reads: one connection for all the chunks' queries
        for build, ids in ((f.listener_features, listeners), (f.track_features, tracks)):
            whole = build(wh, program.program_id, BATCH_DAY, ids)
            assert whole.height == ids.n_unique()
            assert_frame_equal(build(wh, program.program_id, BATCH_DAY, ids, 37), whole)
            empty = build(wh, program.program_id, BATCH_DAY, ids.clear(), 37)
            assert empty.height == 0 and empty.schema == whole.schema


def _rows(n: int, start: int = 0, version: str = "p@1") -> pl.DataFrame:
    return pl.DataFrame({
        "listener_id": list(range(start, start + n)), "track_id": [7] * n, "channel": ["email"] * n,
        "score": [((i * 37) % 100) / 100 for i in range(n)], "propensity_score": [0.5] * n,
        "affinity_score": [0.5] * n, "marketplace": ["US"] * n, "genre": ["pop"] * n, "time_zone": ["UTC"] * n,
        "track_name": ["T"] * n, "artist_id": [3] * n, "propensity_model_version": [version] * n,
        "affinity_model_version": ["a@1"] * n,
        "expires_at": [int(datetime(2030, 1, 1, tzinfo=timezone.utc).timestamp())] * n}).cast(CANDIDATE_SCHEMA)


def _stored(store: SQLiteCandidateStore) -> list[dict]:
    now = datetime(2029, 1, 1, tzinfo=timezone.utc)
    return sorted((r for lst in range(0, 60) for r in store.for_listener("p", lst, now=now)),
                  key=lambda r: (r["listener_id"], r["track_id"], r["channel"]))


@pytest.mark.unit
def test_store_in_chunks_equals_one_put(tmp_path):
    whole, chunked = (SQLiteCandidateStore(path=str(tmp_path / f"{n}.sqlite")) for n in ("whole", "chunked"))
    rows = _rows(50)
    assert whole.put_batch("p", "2026-11-23", rows) == 50
    parts = [rows.slice(i, 7) for i in range(0, 50, 7)]
    assert chunked.put_batch_chunks("p", "2026-11-23", lambda: iter(parts)) == 50
    assert _stored(chunked) == _stored(whole) and len(_stored(whole)) == 50
    assert chunked.count("p", "2026-11-23", now=datetime(2029, 1, 1, tzinfo=timezone.utc)) == 50

    # a later chunk with another model version: written again without that constant, same rows
    mixed = [_rows(20), _rows(20, 20, version="p@2")]
    assert chunked.put_batch_chunks("p", "2026-11-23", lambda: iter(mixed)) == 40
    assert whole.put_batch("p", "2026-11-23", pl.concat(mixed)) == 40
    assert _stored(chunked) == _stored(whole)

    # a pair in two chunks: an error, and the day's earlier rows stay as they were
    with pytest.raises(ValueError, match="duplicate"):
        chunked.put_batch_chunks("p", "2026-11-23", lambda: iter([_rows(10), _rows(5, 8)]))
    assert _stored(chunked) == _stored(whole)
    with sqlite3.connect(tmp_path / "chunked.sqlite") as conn:  # no table left behind by the failed write
        assert conn.execute("SELECT COUNT(*) FROM candidate_batches").fetchone()[0] == 1
        assert len([t for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
                    if t.startswith("cand_")]) == 1


def _materialize(defs, program, instance):
    shutil.rmtree(settings.score_cache_path(), ignore_errors=True)  # every pair scored by the models
    selection = AssetSelection.keys(*[[program.slug, name] for name in STAGES])
    result = materialize(list(defs.assets), selection=selection, partition_key=BATCH_DAY.isoformat(),
                         resources=dict(defs.resources), instance=instance)
    assert result.success
    metas = {}
    for event in result.all_events:
        if event.is_step_materialization:
            mat = event.event_specific_data.materialization
            metas[mat.asset_key.path[-1]] = {k: getattr(v, "value", v) for k, v in mat.metadata.items()}
    return metas


def _frames(home, program) -> dict[str, pl.DataFrame]:
    keys = {"listener_features": ["listener_id"], "track_features": ["track_id"],
            "scored_candidates": ["listener_id", "track_id"]}
    return {name: pl.read_parquet(home / "assets" / program.slug / name / f"{BATCH_DAY}.parquet").sort(by)
            for name, by in keys.items()}


def _store_rows(program) -> list[dict]:
    from music_feedback.resources import candidate_store
    with sqlite3.connect(settings.store_path()) as conn:
        bid, = conn.execute("SELECT id FROM candidate_batches WHERE program_id = ? AND batch_date = ?",
                            (program.program_id, BATCH_DAY.isoformat())).fetchone()
        rows = conn.execute(f"SELECT listener_id, track_id, channel, score, propensity_model_version, "
                            f"affinity_model_version, expires_at, item, status FROM cand_{bid} "
                            "ORDER BY listener_id, track_id, channel").fetchall()
    assert len(rows) == candidate_store().count(program.program_id, BATCH_DAY.isoformat(), now=datetime(
        BATCH_DAY.year, BATCH_DAY.month, BATCH_DAY.day, tzinfo=timezone.utc))
    return rows


@pytest.mark.graph
def test_features_score_and_store_in_tiny_chunks_equal_one_chunk(data_home, monkeypatch):
    """The day's features, scores and stored rows with chunks of 97 rows are those of one chunk, and so is
    the metadata the stages report (row counts, score distribution, mean, batches, cache figures)."""
    program = load_programs()[0]
    with instance_for_test() as instance:
        defs = build_definitions()
        runner.ensure_models(defs, program, instance, day=BATCH_DAY)
        assert runner.run_batch(defs, program, BATCH_DAY, instance).success
        one = _materialize(defs, program, instance)
        one_frames, one_rows = _frames(data_home, program), _store_rows(program)
        monkeypatch.setenv(settings.BATCH_CHUNK_ROWS_VAR, "97")
        tiny = _materialize(defs, program, instance)
    assert tiny["scored_candidates"]["chunks"] > 3 and one["scored_candidates"]["chunks"] == 1
    for name, frame in _frames(data_home, program).items():
        assert_frame_equal(frame, one_frames[name])
    assert _store_rows(program) == one_rows
    compared = ("dagster/row_count", "score_distribution", "mean_score", "batches", "score_cache_hits",
                "scored_now", "score_cache_hit_rate", "rows_by_channel", "candidates", "model_versions")
    for name in STAGES:
        for k in compared:
            if k in one[name]:
                assert tiny[name][k] == one[name][k], (name, k)
