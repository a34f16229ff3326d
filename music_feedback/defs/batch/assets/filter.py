"""filtered_candidates: the program's filter chain, run by the warehouse; candidate_decisions: every removal and
its reason, written by the warehouse. Only the kept pairs (~13%) leave it, for the features and scoring."""

import polars as pl
from dagster import AssetExecutionContext, AssetOut, MetadataValue, Output, multi_asset

from music_feedback.defs.batch.assets.unify import stored
from music_feedback.defs.batch.checks import filter_checks
from music_feedback.defs.common import OWNER, WAREHOUSE_KIND, Stopwatch, key
from music_feedback.defs.partitions import batch_date
from music_feedback.defs.warehouse_tables.assets import reads
from music_feedback.filters import build_chain
from music_feedback.policy.guard import GUARD_STATS
from music_feedback.policy.history import own_history
from music_feedback.programs.model import Program
from music_feedback.quality.checks import run_stats_suite, zero
from music_feedback.transforms import warehouse_stages
from music_feedback.warehouse.port import Warehouse

SEED_PASS_RATE = 200_000 / 1_500_000  # the row-count check's first partition: no previous day to compare with


def build_filter(program: Program, partitions):
    kept_key, decisions_key = key(program, "filtered_candidates"), key(program, "candidate_decisions")
    unified_key = key(program, "unified_candidates")
    chain = build_chain(program.filter_chain)
    order = " -> ".join(f"{f.name}{'' if f.enabled else ' (disabled)'}" for f in chain)

    @multi_asset(
        name=f"{program.slug}__filter", deps=[unified_key, *reads("filter")],
        required_resource_keys={"io_manager", "warehouse", "feedback_store"},
        outs={
            "filtered_candidates": AssetOut(
                key=kept_key, group_name=program.slug, owners=[OWNER], kinds={"sql", WAREHOUSE_KIND},
                description=f"Candidates that passed the filter chain ({order}), run in the warehouse."),
            "candidate_decisions": AssetOut(
                key=decisions_key, group_name=program.slug, owners=[OWNER], kinds={"sql", WAREHOUSE_KIND},
                description="Every candidate a filter removed, with the filter and reason code, written by the "
                            "warehouse: answers 'why was listener L not asked about track T on day D'."),
        },
        partitions_def=partitions,
        check_specs=filter_checks(kept_key, partitions),
    )
    def filter_candidates(context: AssetExecutionContext):
        day = batch_date(context)
        partition = context.partition_key
        watch = Stopwatch()
        warehouse: Warehouse = context.resources.warehouse
        with warehouse.stage_session() as stage:
            with watch.stage("context"):
                own = own_history(context.resources.feedback_store, program.program_id, day)
                warehouse_stages.upload_ledger(stage, own.contacts, own.answered, own.suppressed)
                unified = stored(stage, context.resources.io_manager, unified_key, partition)
            with watch.stage("chain"):
                out = warehouse_stages.filter_chain(stage, unified, chain, program, day, kept_key.path,
                                                    decisions_key.path, partition)
            total, by_filter = out.total, out.removed_by_filter(chain)
            share = {k: round(v / max(total, 1), 4) for k, v in by_filter.items()}
            unknown = int(out.counts.filter(pl.col("reason") == "unknown_listener")["n"].sum())
            yield Output(out.kept, "filtered_candidates", metadata={
                "input_rows": total, "unknown_listeners": unknown, "removed_by_filter": by_filter,
                "removed_share_by_filter": share, "removed_by_reason": out.removed_by_reason(),
                "stage_seconds": watch.stages, "duration_s": round(watch.total, 3),
                # One number per filter, so the UI plots each over the partitions.
                **{f"removed:{name}": MetadataValue.int(n) for name, n in by_filter.items()},
                **{f"removed_share:{name}": MetadataValue.float(v) for name, v in share.items()}})
            yield Output(out.decisions, "candidate_decisions", metadata={"duration_s": round(watch.total, 3)})
            # the guard: the kept pairs against contact signals read afresh, judged by GX
            yield run_stats_suite(kept_key, "no_ineligible_listener_passes", out.guard, zero(*GUARD_STATS))

    return filter_candidates
