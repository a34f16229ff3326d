"""The batch's warehouse-side stages as portable SQL (DuckDB, PostgreSQL, Redshift): the extract split
into kept and set-aside rows, the unify, and the candidates joined to what the filter chain reads. The
chain itself is filters/sql.py."""
from __future__ import annotations

from datetime import date

from music_feedback.transforms.unify import EVENT_TYPE
from music_feedback.transforms.validate import EXTRACT_COLUMNS, malformed_sql, reason_sql
from music_feedback.warehouse.port import date_literal, text_literal


def extract_sql(connector_query: str) -> str:
    """The rows the connector's (bound) query gives that are well formed."""
    cols = ", ".join(EXTRACT_COLUMNS)
    return f"SELECT {cols} FROM ({connector_query}) q WHERE NOT {malformed_sql()}"


def rejected_sql(connector_query: str, malformed_query: str) -> str:
    """Set aside with a reason: the connector's malformed rows and those its WHERE would silently drop."""
    cols = ", ".join(EXTRACT_COLUMNS)
    return (f"SELECT {cols}, {reason_sql()} AS reason FROM (SELECT {cols} FROM ({connector_query}) q "
            f"UNION ALL SELECT {cols} FROM ({malformed_query}) m) x WHERE {malformed_sql()}")


def unify_sql(raw: str, program_id: str, day: date, connector_id: str) -> str:
    """One row per listener+track with the listener's and track's context and the event metadata. A
    pair's genre, artist and release date are its track's, so MIN of equal values picks them."""
    return f"""
        SELECT p.listener_id, p.track_id, p.play_count, p.session_count, p.completion_rate, p.engagement_score,
               p.first_played_at, p.last_played_at, p.genre, p.artist_id, p.track_release_date,
               l.marketplace, l.time_zone, l.voice_enabled, t.track_name,
               {text_literal(program_id)} AS program_id, {date_literal(day)} AS batch_date,
               {text_literal(EVENT_TYPE)} AS event_type, {text_literal(connector_id)} AS source_connector
        FROM (SELECT listener_id, track_id, CAST(SUM(play_count) AS INTEGER) AS play_count,
                     COUNT(*) AS session_count, MAX(completion_rate) AS completion_rate,
                     MAX(engagement_score) AS engagement_score, MIN(played_at) AS first_played_at,
                     MAX(played_at) AS last_played_at, MIN(genre) AS genre, MIN(artist_id) AS artist_id,
                     MIN(track_release_date) AS track_release_date
              FROM {raw} GROUP BY listener_id, track_id) p
        LEFT JOIN listeners l ON l.listener_id = p.listener_id
        LEFT JOIN tracks t ON t.track_id = p.track_id"""


def candidates_sql(unified: str, answered: str, prior_requests: str) -> str:
    """The unified pairs with what the filters read (filters/sql.SIGNALS). `answered` (listener_id,
    track_id) and `prior_requests` (listener_id, prior_requests) are relations; `own_suppressed`
    (listener_id) is the program's own unsubscribes, uploaded for the session."""
    return f"""
        SELECT u.*, l.bot_score, l.is_authentic,
               (l.opted_out OR s.listener_id IS NOT NULL) AS opted_out,
               l.engagement_score AS listener_engagement, t.feedback_eligible,
               (a.listener_id IS NOT NULL) AS answered, COALESCE(r.prior_requests, 0) AS prior_requests
        FROM {unified} u
        LEFT JOIN listeners l ON l.listener_id = u.listener_id
        LEFT JOIN (SELECT DISTINCT listener_id FROM own_suppressed) s ON s.listener_id = u.listener_id
        LEFT JOIN tracks t ON t.track_id = u.track_id
        LEFT JOIN (SELECT DISTINCT listener_id, track_id FROM ({answered}) x) a
               ON a.listener_id = u.listener_id AND a.track_id = u.track_id
        LEFT JOIN (SELECT listener_id, SUM(prior_requests) AS prior_requests FROM ({prior_requests}) y
                   GROUP BY listener_id) r ON r.listener_id = u.listener_id"""
