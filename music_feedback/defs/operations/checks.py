"""no_expired_candidate_served: a standalone check on candidate_cleanup, so it can be re-run from the UI at any
time: it reads the candidate store and the clock, nothing the cleanup's step holds."""

from dagster import AssetCheckResult, AssetChecksDefinition, asset_check

from music_feedback.clock import Clock
from music_feedback.defs.common import key
from music_feedback.programs.model import Program
from music_feedback.store.base import CandidateStore


def build_cleanup_check(program: Program) -> AssetChecksDefinition:
    @asset_check(asset=key(program, "candidate_cleanup"), name="no_expired_candidate_served",
                 description="Every channel's read returns no candidate past its TTL.")
    def no_expired_candidate_served(candidate_store: CandidateStore) -> AssetCheckResult:
        now = Clock.from_env().now()
        served = sum(1 for ch in program.enabled_channels()
                     for r in candidate_store.for_channel(program.program_id, ch.channel_id, limit=1_000_000)
                     if r["expires_at"] <= now)
        return AssetCheckResult(passed=served == 0, metadata={"expired_rows_served": served})

    return no_expired_candidate_served
