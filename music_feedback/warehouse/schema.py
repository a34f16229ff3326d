"""The tables and columns the extract, filters and features read: the warehouse contract."""
from __future__ import annotations

GENRES = ("pop", "rock", "hip-hop", "electronic", "r&b", "country", "latin", "jazz", "classical", "k-pop")

MARKETPLACE_TIMEZONES = {
    "US": ("America/New_York", "America/Chicago", "America/Los_Angeles"),
    "UK": ("Europe/London",),
    "DE": ("Europe/Berlin",),
    "FR": ("Europe/Paris",),
    "JP": ("Asia/Tokyo",),
    "IN": ("Asia/Kolkata",),
}

TABLES: dict[str, dict[str, str]] = {
    "track_plays": {
        "listener_id": "BIGINT", "track_id": "BIGINT", "play_count": "INTEGER",
        "completion_rate": "DOUBLE", "engagement_score": "DOUBLE", "playback_ms": "BIGINT",
        "played_at": "TIMESTAMP", "track_release_date": "DATE", "genre": "VARCHAR", "artist_id": "BIGINT",
    },
    "listeners": {
        "listener_id": "BIGINT", "marketplace": "VARCHAR", "time_zone": "VARCHAR",
        "opted_out": "BOOLEAN", "bot_score": "DOUBLE", "is_authentic": "BOOLEAN",
        "engagement_score": "DOUBLE", "listening_frequency": "DOUBLE", "voice_enabled": "BOOLEAN",
        "signup_date": "DATE",
    },
    "listener_genre_affinity": {"listener_id": "BIGINT", "genre": "VARCHAR", "weight": "DOUBLE"},
    "tracks": {
        "track_id": "BIGINT", "track_name": "VARCHAR", "genre": "VARCHAR", "artist_id": "BIGINT",
        "artist_popularity": "DOUBLE", "release_date": "DATE", "popularity": "DOUBLE",
        "feedback_eligible": "BOOLEAN",
    },
    "feedback_history": {
        "program_id": "VARCHAR", "listener_id": "BIGINT", "track_id": "BIGINT", "channel": "VARCHAR",
        "rating": "INTEGER", "submitted_at": "TIMESTAMP",
    },
    "feedback_requests": {
        "program_id": "VARCHAR", "listener_id": "BIGINT", "track_id": "BIGINT", "channel": "VARCHAR",
        "requested_at": "TIMESTAMP",
    },
    "feedback_outcomes": {
        "program_id": "VARCHAR", "listener_id": "BIGINT", "track_id": "BIGINT", "requested_at": "TIMESTAMP",
        "engagement_score": "DOUBLE", "feedback_history": "DOUBLE", "music_taste_profile": "DOUBLE",
        "listening_frequency": "DOUBLE", "genre": "VARCHAR", "artist_popularity": "DOUBLE",
        "release_date": "DATE", "similar_track_ratings": "DOUBLE", "responded": "BOOLEAN", "liked": "BOOLEAN",
    },
}
