"""candidate_cleanup: the weekly purge of expired candidates (its check that none is still served: checks.py)."""


from dagster import AssetExecutionContext, MaterializeResult, asset

from music_feedback.clock import Clock
from music_feedback.defs.common import OWNER, key
from music_feedback.programs.model import Program
from music_feedback.store.base import CandidateStore


def build_cleanup(program: Program):
    asset_key = key(program, "candidate_cleanup")

    @asset(key=asset_key, group_name=program.slug, owners=[OWNER], kinds={"sqlite"},
           deps=[key(program, "stored_candidates")],
           description="Deletes the candidates past their TTL (DynamoDB's own TTL deletes lag up to two days; "
                       "every read hides them meanwhile); its check then reads each channel to see none is served.")
    def candidate_cleanup(context: AssetExecutionContext, candidate_store: CandidateStore) -> MaterializeResult:
        removed = candidate_store.purge_expired(Clock.from_env().datetime())
        return MaterializeResult(
            metadata={"removed": removed, "live_rows": candidate_store.count(program.program_id)})

    return candidate_cleanup
