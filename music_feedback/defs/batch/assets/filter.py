"""filtered_candidates: the program's filter chain; candidate_decisions: every removal and its reason."""

from concurrent.futures import ThreadPoolExecutor

import polars as pl
from dagster import AssetExecutionContext, AssetIn, AssetOut, MetadataValue, Output, multi_asset

from music_feedback.defs.batch.checks import filter_checks, guard_expectations, guard_frame
from music_feedback.defs.common import OWNER, Stopwatch, frame_metadata, key
from music_feedback.defs.partitions import batch_date
from music_feedback.defs.warehouse_tables.assets import reads
from music_feedback.filters import FilterContext, build_chain, run_chain
from music_feedback.filters.base import LISTENER_SIGNALS
from music_feedback.policy import ContactPolicy, contact_signals
from music_feedback.policy.contact import batch_window
from music_feedback.policy.history import add_contacts, own_history, with_suppressions
from music_feedback.feedback.port import FeedbackStore
from music_feedback.programs.model import Program
from music_feedback.quality.checks import run_suite, started
from music_feedback.warehouse import queries as q
from music_feedback.warehouse.port import Warehouse


SEED_PASS_RATE = 200_000 / 1_500_000  # the row-count check's first partition: no previous day to compare with
_READS = ThreadPoolExecutor(max_workers=1, thread_name_prefix="guard-read")


def build_filter(program: Program, partitions):
    kept_key, decisions_key = key(program, "filtered_candidates"), key(program, "candidate_decisions")
    chain = build_chain(program.filter_chain)
    order = " -> ".join(f"{f.name}{'' if f.enabled else ' (disabled)'}" for f in chain)

    @multi_asset(
        name=f"{program.slug}__filter", deps=reads("filter"),
        ins={"unified": AssetIn(key(program, "unified_candidates"))},
        outs={
            "filtered_candidates": AssetOut(
                key=kept_key, group_name=program.slug, owners=[OWNER], kinds={"polars"},
                description=f"Candidates that passed the filter chain ({order})."),
            "candidate_decisions": AssetOut(
                key=decisions_key, group_name=program.slug, owners=[OWNER], kinds={"polars"},
                description="Every candidate a filter removed, with the filter and reason code: answers "
                            "'why was listener L not asked about track T on day D'."),
        },
        partitions_def=partitions,
        check_specs=filter_checks(kept_key, partitions),
    )
    def filter_candidates(context: AssetExecutionContext, warehouse: Warehouse, feedback_store: FeedbackStore,
                          unified: pl.LazyFrame):
        day = batch_date(context)
        watch = Stopwatch()
        own = own_history(feedback_store, program.program_id, day)

        def read_signals() -> pl.DataFrame:
            with warehouse.session():  # this thread's own connection
                return with_suppressions(contact_signals(warehouse, program.program_id, batch_window(day)),
                                         own.suppressed)
        # The guard's warehouse read (~0.15 s) runs while the chain does, not after it; still a read of its
        # own, taken during this step, not the frames the filters loaded.
        signals = _READS.submit(read_signals)
        with watch.stage("context"), warehouse.session():  # closed before the chain: its cache is ~100 MB
            ctx = FilterContext(program.program_id, day,
                                with_suppressions(q.listener_context(warehouse, LISTENER_SIGNALS), own.suppressed),
                                q.track_context(warehouse, ["track_id", "feedback_eligible"]),
                                pl.concat([q.prior_feedback_pairs(warehouse, program.program_id, day), own.answered]),
                                add_contacts(q.recent_request_counts(warehouse, program.program_id,
                                                                     *batch_window(day)), own.contacts),
                                tuple(program.marketplaces))
        with watch.stage("chain"):
            result = run_chain(chain, unified, ctx)
        del ctx  # the guard reads the warehouse afresh
        unified_rows = unified.select(pl.len()).collect().item()
        stages = {**watch.stages, **{f"filter:{k}": v for k, v in result.seconds_by_filter.items()}}
        removed_share = {k: round(v / max(unified_rows, 1), 4) for k, v in result.removed_by_filter.items()}
        reasons = dict(result.decisions.group_by("reason").len().sort("reason").iter_rows())

        def guard():
            return run_suite(kept_key, "no_ineligible_listener_passes",
                             guard_frame(result.kept, signals.result(), own.contacts),
                             guard_expectations(ContactPolicy.of_chain(chain)))
        guarded = started(guard)
        yield Output(result.kept, "filtered_candidates", metadata=frame_metadata(
            result.kept, watch.total, input_rows=unified_rows, removed_by_filter=result.removed_by_filter,
            removed_share_by_filter=removed_share, removed_by_reason=reasons, stage_seconds=stages,
            # One number per filter, so the UI plots each over the partitions.
            **{f"removed:{name}": MetadataValue.int(n) for name, n in result.removed_by_filter.items()},
            **{f"removed_share:{name}": MetadataValue.float(v) for name, v in removed_share.items()}))
        decisions = result.decisions.with_columns(pl.lit(day).alias("batch_date"))
        yield Output(decisions, "candidate_decisions", metadata=frame_metadata(decisions, watch.total))
        yield guarded.result()

    return filter_candidates
