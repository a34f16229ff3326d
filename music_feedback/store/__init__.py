"""Candidate store: the port and its adapters."""
from music_feedback.store.base import CANDIDATE_COLUMNS, CANDIDATE_SCHEMA, CandidateStore, validate_candidates
from music_feedback.store.sqlite_store import SQLiteCandidateStore

__all__ = [
    "CANDIDATE_COLUMNS",
    "CANDIDATE_SCHEMA",
    "CandidateStore",
    "SQLiteCandidateStore",
    "validate_candidates",
]
