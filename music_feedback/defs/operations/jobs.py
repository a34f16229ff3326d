"""The cleanup job: purge the expired candidates (not partitioned: it sweeps every day at once)."""
from __future__ import annotations

from music_feedback.defs.automation import asset_job
from music_feedback.programs.model import Program


def cleanup_job(program: Program):
    return asset_job(program, "cleanup", ["candidate_cleanup"],
                     "purge expired candidates (Sundays 01:00 UTC).", daily=None)
