"""raw_streams: the day's completed plays of new tracks; malformed rows go to rejected_streams. The warehouse
runs the connector's query and the split and writes both; nothing of the day's plays passes through Python.
Its checks are standalone (defs/batch/assets/checks.py)."""

from dagster import AssetExecutionContext, AssetOut, Output, multi_asset

from music_feedback.defs.common import OWNER, WAREHOUSE_KIND, Stopwatch, key
from music_feedback.defs.partitions import batch_date
from music_feedback.defs.warehouse_tables.assets import table_key
from music_feedback.programs.model import Program
from music_feedback.quality.gx_runner import warm_up_in_background
from music_feedback.transforms import warehouse_stages
from music_feedback.warehouse.port import Warehouse


def build_extract(program: Program, partitions):
    raw_key, rejected_key = key(program, "raw_streams"), key(program, "rejected_streams")
    connector = program.connector

    @multi_asset(
        name=f"{program.slug}__extract", deps=[table_key(connector.config.table)],
        outs={
            "raw_streams": AssetOut(
                key=raw_key, group_name=program.slug, owners=[OWNER], kinds={"sql", WAREHOUSE_KIND},
                description=f"Completed plays (>= 95%) on day D of tracks released in the 7 days before, "
                            f"extracted by connector '{connector.connector_id}' ({connector.type}) in the warehouse."),
            "rejected_streams": AssetOut(
                key=rejected_key, group_name=program.slug, owners=[OWNER], kinds={"sql", WAREHOUSE_KIND},
                description="Extracted rows set aside because a field was null or out of range, with a reason."),
        },
        partitions_def=partitions,
    )
    def extract(context: AssetExecutionContext, warehouse: Warehouse):
        day = batch_date(context)
        watch = Stopwatch()
        warm_up_in_background()
        with warehouse.session():
            warehouse.require_contract(connector.connector_id, connector.config.table)
        partition = context.partition_key
        with warehouse.stage_session() as stage:
            with watch.stage("query"):
                out = warehouse_stages.extract(stage, program, day, raw_key.path, rejected_key.path, partition)
            reasons = out.rejected_by_reason
            # rejected_rows is what the standalone checks (assets/checks.py) read back; the row counts and
            # columns are added as each output is written.
            yield Output(out.raw, "raw_streams", metadata={
                "rejected_rows": sum(reasons.values()), "rejected_by_reason": reasons, "stage_seconds": watch.stages,
                "connector": connector.connector_id, "duration_s": round(watch.total, 3)})
            yield Output(out.rejected, "rejected_streams", metadata={"by_reason": reasons,
                                                                     "duration_s": round(watch.total, 3)})

    return extract
