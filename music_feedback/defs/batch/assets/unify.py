"""unified_candidates: one row per listener+track with marketplace, genre and event metadata, made by the
warehouse from the stored raw plays."""

from dagster import AssetExecutionContext, Output, asset

from music_feedback.defs.common import OWNER, WAREHOUSE_KIND, Stopwatch, key
from music_feedback.defs.partitions import batch_date
from music_feedback.defs.warehouse_tables.assets import reads
from music_feedback.programs.model import Program
from music_feedback.transforms import warehouse_stages
from music_feedback.warehouse.port import Warehouse
from music_feedback.warehouse.stage import StageSession


def stored(stage: StageSession, io_manager, asset_key, partition: str) -> str:
    """A relation over a stage's stored output, wherever the IO manager keeps it."""
    path = list(asset_key.path)
    return stage.stored(path, partition, io_manager.where(io_manager.key_of(path, partition, "parquet")))


def build_unify(program: Program, partitions):
    asset_key, raw_key = key(program, "unified_candidates"), key(program, "raw_streams")

    @asset(
        key=asset_key, group_name=program.slug, owners=[OWNER], kinds={"sql", WAREHOUSE_KIND},
        partitions_def=partitions, deps=[raw_key, *reads("unify")], required_resource_keys={"io_manager", "warehouse"},
        description="The unified candidate model: raw plays deduplicated by listener+track, with genre, "
                    "artist, release date and event metadata, made in the warehouse (the listener's marketplace "
                    "and time zone and the track's name join the pairs the filter chain keeps).",
    )
    def unified_candidates(context: AssetExecutionContext):
        watch = Stopwatch()
        warehouse: Warehouse = context.resources.warehouse
        partition = context.partition_key
        with warehouse.stage_session() as stage:
            raw = stored(stage, context.resources.io_manager, raw_key, partition)
            raw_rows, out = warehouse_stages.unify(stage, raw, program, batch_date(context), asset_key.path, partition)
            # the pairs' count is the output's row count, known once written: raw_rows - it is what merged
            yield Output(out, metadata={"raw_rows": raw_rows, "duration_s": round(watch.total, 3)})

    return unified_candidates
