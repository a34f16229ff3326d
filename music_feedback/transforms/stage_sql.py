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


# The listener's and track's context the kept pairs carry; joined by the filter stage, which reads those
# tables anyway, so the unify writes no text column per pair that the filter would throw away for 87% of them.
CONTEXT = ("marketplace", "time_zone", "voice_enabled", "track_name")


def unify_sql(raw: str, program_id: str, day: date, connector_id: str) -> str:
    """One row per listener+track with the event metadata. A pair's genre, artist and release date are its
    track's, so MIN of equal values picks them."""
    return f"""
        SELECT listener_id, track_id, CAST(SUM(play_count) AS INTEGER) AS play_count,
               COUNT(*) AS session_count, MAX(completion_rate) AS completion_rate,
               MAX(engagement_score) AS engagement_score, MIN(played_at) AS first_played_at,
               MAX(played_at) AS last_played_at, MIN(genre) AS genre, MIN(artist_id) AS artist_id,
               MIN(track_release_date) AS track_release_date,
               {text_literal(program_id)} AS program_id, {date_literal(day)} AS batch_date,
               {text_literal(EVENT_TYPE)} AS event_type, {text_literal(connector_id)} AS source_connector
        FROM {raw} r GROUP BY listener_id, track_id"""


# The unified columns the filters read besides the keys (the cap's order); the rest join the kept pairs only.
RANKED_BY = ("play_count", "completion_rate", "last_played_at")


def candidates_sql(unified: str, listeners: str, answered: str, prior_requests: str) -> str:
    """The unified pairs narrowed to what the filters read (filters/sql.SIGNALS, the marketplace and the
    cap's order; a chain carrying every column of 1.5M pairs through its window took seconds), with the
    listener's signals, the track's eligibility, whether the pair was answered and the listener's prior
    requests. `answered` (listener_id, track_id, distinct) and `prior_requests` (listener_id, prior_requests,
    one row a listener) are the warehouse's; `own_suppressed`, `own_answered` and `own_contacts` the program's
    own ledger, uploaded for the session and joined apart (a union of the two, grouped again, ran out of
    memory at 20x). The listeners' table is the largest side of the joins: on DuckDB a pass takes a range."""
    return f"""
        SELECT u.listener_id, u.track_id, {', '.join(f'u.{c}' for c in RANKED_BY)}, l.marketplace,
               l.bot_score, l.is_authentic, (l.opted_out OR s.listener_id IS NOT NULL) AS opted_out,
               l.engagement_score AS listener_engagement, t.feedback_eligible,
               (a.listener_id IS NOT NULL OR oa.listener_id IS NOT NULL) AS answered,
               COALESCE(r.prior_requests, 0) + COALESCE(oc.requests, 0) AS prior_requests
        FROM {unified} u
        LEFT JOIN {listeners} l ON l.listener_id = u.listener_id
        LEFT JOIN (SELECT DISTINCT listener_id FROM own_suppressed) s ON s.listener_id = u.listener_id
        LEFT JOIN tracks t ON t.track_id = u.track_id
        LEFT JOIN ({answered}) a ON a.listener_id = u.listener_id AND a.track_id = u.track_id
        LEFT JOIN (SELECT DISTINCT listener_id, track_id FROM own_answered) oa
               ON oa.listener_id = u.listener_id AND oa.track_id = u.track_id
        LEFT JOIN ({prior_requests}) r ON r.listener_id = u.listener_id
        LEFT JOIN (SELECT listener_id, CAST(SUM(requests) AS BIGINT) AS requests FROM own_contacts
                   GROUP BY listener_id) oc ON oc.listener_id = u.listener_id"""


def kept_sql(decided: str, unified: str, signals, listeners: str = "listeners") -> str:
    """The pairs the chain kept with every unified column, their CONTEXT and the `signals` they were judged by,
    in listener and track order."""
    return f"""
        SELECT u.*, l.marketplace, l.time_zone, l.voice_enabled, t.track_name, {', '.join(f'd.{c}' for c in signals)}
        FROM {decided} d
        JOIN {unified} u ON u.listener_id = d.listener_id AND u.track_id = d.track_id
        LEFT JOIN {listeners} l ON l.listener_id = d.listener_id
        LEFT JOIN tracks t ON t.track_id = d.track_id
        WHERE d.reason IS NULL
        ORDER BY d.listener_id, d.track_id"""
