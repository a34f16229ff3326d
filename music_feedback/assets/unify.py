"""unified_candidates: one row per listener+track with marketplace, genre and event metadata."""

from dagster import AssetCheckSpec, AssetExecutionContext, AssetIn, Output, asset

from music_feedback.assets.common import OWNER, Stopwatch, batch_date, frame_metadata, key
from music_feedback.programs.model import Program
from music_feedback.quality.checks import run_suite
from music_feedback.quality.expectations import NotNull, Unique
from music_feedback.transforms.unify import unify
from music_feedback.warehouse import queries as q
from music_feedback.warehouse.port import Warehouse

REQUIRED = ("listener_id", "track_id", "event_id", "play_count", "completion_rate", "engagement_score",
            "first_played_at", "track_release_date")


def build_unify(program: Program, partitions):
    asset_key = key(program, "unified_candidates")

    @asset(
        key=asset_key, group_name=program.slug, owners=[OWNER], kinds={"polars"},
        partitions_def=partitions, ins={"raw": AssetIn(key(program, "raw_streams"))},
        description="The unified candidate model: raw plays deduplicated by listener+track, with "
                    "marketplace, time zone and genre context and event metadata.",
        check_specs=[AssetCheckSpec("unique_and_complete", asset=asset_key, blocking=True,
                                    description="listener+track unique; required fields non-null.")],
    )
    def unified_candidates(context: AssetExecutionContext, warehouse: Warehouse, raw):
        watch = Stopwatch()
        with watch.stage("context"):
            listeners, tracks = q.listener_context(warehouse), q.track_context(warehouse)
        with watch.stage("unify"):
            out = unify(raw, listeners, tracks, program.program_id, batch_date(context),
                        program.connector.connector_id)
        unknown = int(out["marketplace"].is_null().sum())
        yield Output(out, metadata=frame_metadata(out, watch.total, duplicates_merged=raw.height - out.height,
                                                  unknown_listeners=unknown, stage_seconds=watch.stages))
        yield run_suite(asset_key, "unique_and_complete", out,
                        [Unique(("listener_id", "track_id")), *(NotNull(c) for c in REQUIRED)])

    return unified_candidates
