"""A small store and a configured app for the service tests (and for other routers' tests to reuse)."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import duckdb
import polars as pl

from music_feedback.delivery.links import LinkSigner
from music_feedback.feedback.sqlite_store import SQLiteFeedbackStore
from music_feedback.programs.loader import load_programs
from music_feedback.service.app import create_app
from music_feedback.service.auth import ApiKeyRing
from music_feedback.service.config import ServiceConfig
from music_feedback.service.ratelimit import RateLimits
from music_feedback.store import CANDIDATE_SCHEMA, SQLiteCandidateStore
from music_feedback.warehouse.duckdb_warehouse import DuckDBWarehouse

PROGRAM = "music-feedback"
ALL_KEY = "all-programs-key-0123456789"
OTHER_KEY = "other-program-key-0123456789"
KEYS = ApiKeyRing.parse([{"name": "reader", "key": ALL_KEY, "programs": ["*"]},
                         {"name": "podcast", "key": OTHER_KEY, "programs": ["podcast-feedback"]}], "test")


def auth(key: str = ALL_KEY) -> dict:
    return {"Authorization": f"Bearer {key}"}


def candidate(listener_id: int, track_id: int, score: float, **kw) -> dict:
    base = dict(channel="email", propensity_score=0.5, affinity_score=0.5, marketplace="US", genre="rock",
                time_zone="UTC", track_name=f"Track {track_id}", artist_id=1, propensity_model_version="p1",
                affinity_model_version="a1", expires_at=int(time.time()) + 86_400)
    return {**base, "listener_id": listener_id, "track_id": track_id, "score": score, **kw}


def frame(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=CANDIDATE_SCHEMA)


LINKS = LinkSigner({"t1": b"test-link-secret-0123456789"}, "t1")


def policy_warehouse(folder: Path, listeners: int = 1_000, opted_out=(), bots=(), requests=()) -> DuckDBWarehouse:
    """A DuckDB warehouse with what the contact policy reads: listeners 1..`listeners`, trusted unless in
    `bots`, opted in unless in `opted_out`; `requests` as (listener_id, epoch seconds) earlier requests."""
    path = folder / "policy-warehouse.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE OR REPLACE TABLE listeners AS SELECT i::BIGINT AS listener_id, "
                    "list_contains($1, i) AS opted_out, CASE WHEN list_contains($2, i) THEN 0.95 ELSE 0.05 END "
                    "AS bot_score, TRUE AS is_authentic FROM range(1, $3 + 1) t(i)",
                    [list(opted_out), list(bots), listeners])
        con.execute("CREATE OR REPLACE TABLE feedback_requests (program_id VARCHAR, listener_id BIGINT, "
                    "track_id BIGINT, channel VARCHAR, requested_at TIMESTAMP)")
        for lid, at in requests:
            con.execute("INSERT INTO feedback_requests VALUES ($1, $2, 0, 'email', to_timestamp($3)::TIMESTAMP)",
                        [PROGRAM, lid, at])
    return DuckDBWarehouse(path=str(path))


def make_app(store, page_size: int = 1_000, max_per_track: int = 10_000, keys: ApiKeyRing = KEYS,
             feedback=None, links: LinkSigner = LINKS, programs=None, warehouse=None, clock=None,
             rate_limits: RateLimits | None = None):
    """`feedback` defaults to a SQLite feedback store beside a SQLite candidate store (else in memory);
    `warehouse` to a small one of trusted, opted-in listeners in the same folder; `rate_limits` to the
    service's defaults."""
    config = ServiceConfig(page_size=page_size, max_per_track=max_per_track, api_keys=keys,
                           cursor_secret=b"test-secret-0123456789", rate_limits=rate_limits or RateLimits())
    folder = Path(getattr(store, "path", "")).parent if getattr(store, "path", None) else Path(tempfile.mkdtemp())
    if feedback is None:
        feedback = SQLiteFeedbackStore(path=str(folder / "feedback.sqlite"))
    if warehouse is None:
        warehouse = policy_warehouse(folder)
    return create_app(config, store=store, programs=programs or load_programs(), feedback=feedback, links=links,
                      warehouse=warehouse, clock=clock)


def sqlite_store(tmp_path) -> SQLiteCandidateStore:
    return SQLiteCandidateStore(path=str(tmp_path / "candidates.sqlite"))
