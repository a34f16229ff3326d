"""candidate_cleanup: the weekly purge of expired candidates, and a check that none is still served."""


from dagster import AssetCheckResult, AssetCheckSpec, AssetExecutionContext, MaterializeResult, asset

from music_feedback.clock import Clock
from music_feedback.defs.common import OWNER, key
from music_feedback.programs.model import Program
from music_feedback.store.base import CandidateStore


def build_cleanup(program: Program):
    asset_key = key(program, "candidate_cleanup")

    @asset(key=asset_key, group_name=program.slug, owners=[OWNER], kinds={"sqlite"},
           deps=[key(program, "stored_candidates")],
           check_specs=[AssetCheckSpec("no_expired_candidate_served", asset=asset_key,
                                       description="Every channel's read returns no candidate past its TTL.")],
           description="Deletes the candidates past their TTL (DynamoDB's own TTL deletes lag up to two days; "
                       "every read hides them meanwhile), then reads each channel to check none is served.")
    def candidate_cleanup(context: AssetExecutionContext, candidate_store: CandidateStore) -> MaterializeResult:
        clock = Clock.from_env()
        now = clock.now()
        removed = candidate_store.purge_expired(clock.datetime())
        served = sum(1 for ch in program.enabled_channels()
                     for r in candidate_store.for_channel(program.program_id, ch.channel_id, limit=1_000_000)
                     if r["expires_at"] <= now)
        return MaterializeResult(
            metadata={"removed": removed, "live_rows": candidate_store.count(program.program_id)},
            check_results=[AssetCheckResult(check_name="no_expired_candidate_served", passed=served == 0,
                                            metadata={"expired_rows_served": served})])

    return candidate_cleanup
