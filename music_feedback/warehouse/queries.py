"""Portable SQL the filters and feature hydration read (DuckDB, Postgres and Redshift all run it)."""
from __future__ import annotations

from datetime import date, timedelta

import polars as pl

from music_feedback.warehouse.port import (Warehouse, date_literal, release_window_start, text_literal,
                                            timestamp_literal)

FEEDBACK_HISTORY_DAYS = 90


def listeners_between(relation: str, lo: int | None, hi: int | None) -> str:
    """`relation`'s rows of the listeners lo..hi (all of them when lo is None): a stage run a listener range
    at a time (transforms/warehouse_stages.listener_passes) reads each table through this."""
    return relation if lo is None else f"(SELECT * FROM {relation} p WHERE listener_id BETWEEN {lo} AND {hi})"


def _fetch(wh: Warehouse, table: str, columns: list[str], sql: str) -> pl.DataFrame:
    wh.require(table, columns)
    return wh.fetch(sql)


LISTENER_COLUMNS = ["listener_id", "marketplace", "time_zone", "opted_out", "bot_score", "is_authentic",
                    "engagement_score", "listening_frequency", "voice_enabled"]
TRACK_COLUMNS = ["track_id", "track_name", "genre", "artist_id", "artist_popularity", "release_date",
                 "feedback_eligible"]


def listener_context(wh: Warehouse, cols: list[str] | None = None) -> pl.DataFrame:
    """`cols` (default: all of LISTENER_COLUMNS): a stage reads only what it uses of 800K listeners."""
    cols = cols or LISTENER_COLUMNS
    return _fetch(wh, "listeners", cols, f"SELECT {', '.join(cols)} FROM listeners")


def track_context(wh: Warehouse, cols: list[str] | None = None) -> pl.DataFrame:
    cols = cols or TRACK_COLUMNS
    return _fetch(wh, "tracks", cols, f"SELECT {', '.join(cols)} FROM tracks")


def prior_feedback_pairs_sql(program_id: str, batch_date: date) -> str:
    """(listener, track) pairs already answered before the batch day ends, on tracks new in the window."""
    start = release_window_start(batch_date)
    return f"""
        SELECT DISTINCT f.listener_id, f.track_id
        FROM feedback_history f JOIN tracks t ON t.track_id = f.track_id
        WHERE f.program_id = {text_literal(program_id)}
          AND t.release_date >= {date_literal(start)}
          AND f.submitted_at < {date_literal(batch_date + timedelta(days=1))}"""


def prior_feedback_pairs(wh: Warehouse, program_id: str, batch_date: date) -> pl.DataFrame:
    wh.require("tracks", ["track_id", "release_date"])
    return _fetch(wh, "feedback_history", ["program_id", "listener_id", "track_id", "submitted_at"],
                  prior_feedback_pairs_sql(program_id, batch_date))


def recent_request_counts_sql(program_id: str, since: float, until: float,
                              listener_ids: list[int] | None = None) -> str:
    """Requests each listener received in the open interval (since, until), epoch seconds: the contact
    policy's cap window (policy.contact.cap_window)."""
    who = f"AND listener_id IN ({', '.join(str(int(i)) for i in listener_ids)})" if listener_ids else ""
    return f"""
        SELECT listener_id, COUNT(*) AS prior_requests
        FROM feedback_requests
        WHERE program_id = {text_literal(program_id)}
          AND requested_at > {timestamp_literal(since)}
          AND requested_at < {timestamp_literal(until)} {who}
        GROUP BY listener_id"""


def recent_request_counts(wh: Warehouse, program_id: str, since: float, until: float,
                          listener_ids: list[int] | None = None) -> pl.DataFrame:
    return _fetch(wh, "feedback_requests", ["program_id", "listener_id", "requested_at"],
                  recent_request_counts_sql(program_id, since, until, listener_ids))


def feedback_counts(wh: Warehouse, program_id: str, batch_date: date) -> pl.DataFrame:
    """Answers each listener gave in the last 90 days: the feedback_history feature."""
    start = batch_date - timedelta(days=FEEDBACK_HISTORY_DAYS - 1)
    return _fetch(wh, "feedback_history", ["program_id", "listener_id", "submitted_at"], f"""
        SELECT listener_id, COUNT(*) AS feedback_history
        FROM feedback_history
        WHERE program_id = '{program_id}'
          AND submitted_at >= {date_literal(start)}
          AND submitted_at < {date_literal(batch_date + timedelta(days=1))}
        GROUP BY listener_id""")


def artist_ratings(wh: Warehouse, program_id: str, batch_date: date) -> pl.DataFrame:
    """Likes and answers per artist before the batch day ends: similar_track_ratings comes from it."""
    wh.require("tracks", ["track_id", "artist_id"])
    return _fetch(wh, "feedback_history", ["program_id", "track_id", "rating", "submitted_at"], f"""
        SELECT t.artist_id,
               CAST(SUM(CASE WHEN f.rating > 0 THEN 1 ELSE 0 END) AS DOUBLE PRECISION) AS likes,
               COUNT(*) AS answers
        FROM feedback_history f JOIN tracks t ON t.track_id = f.track_id
        WHERE f.program_id = '{program_id}'
          AND f.submitted_at < {date_literal(batch_date + timedelta(days=1))}
        GROUP BY t.artist_id""")


def genre_affinity(wh: Warehouse) -> pl.DataFrame:
    return _fetch(wh, "listener_genre_affinity", ["listener_id", "genre", "weight"],
                  "SELECT listener_id, genre, weight FROM listener_genre_affinity")


def training_outcomes(wh: Warehouse, program_id: str) -> pl.DataFrame:
    wh.require("feedback_outcomes")
    return wh.fetch(f"SELECT * FROM feedback_outcomes WHERE program_id = '{program_id}'")
