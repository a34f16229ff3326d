"""filtered_candidates: the program's filter chain, run by the warehouse; candidate_decisions: every removal and
its reason, written by the warehouse. Only the kept pairs (~13%) leave it, for the features and scoring."""

import polars as pl
from dagster import AssetExecutionContext, AssetOut, MetadataValue, Output, multi_asset

from music_feedback.defs.batch.assets.unify import stored
from music_feedback.defs.batch.checks import filter_checks, guard_sql, GUARD_STATS
from music_feedback.defs.common import OWNER, WAREHOUSE_KIND, Stopwatch, key
from music_feedback.defs.partitions import batch_date
from music_feedback.defs.warehouse_tables.assets import reads
from music_feedback.feedback.port import FeedbackStore
from music_feedback.filters import build_chain
from music_feedback.filters.sql import SqlChain, chain_query
from music_feedback.policy import ContactPolicy
from music_feedback.policy.contact import batch_window
from music_feedback.policy.history import own_history
from music_feedback.programs.model import Program
from music_feedback.quality.checks import run_stats_suite, zero
from music_feedback.transforms.stage_sql import candidates_sql
from music_feedback.warehouse import queries as q
from music_feedback.warehouse.port import Warehouse
from music_feedback.warehouse.stage import StageSession

SEED_PASS_RATE = 200_000 / 1_500_000  # the row-count check's first partition: no previous day to compare with
# What the kept rows carry besides the unified columns: the signals the chain judged them by.
KEPT_SIGNALS = ("bot_score", "is_authentic", "opted_out", "feedback_eligible", "prior_requests")


def upload_own_history(stage: StageSession, feedback_store: FeedbackStore, program: Program, day) -> None:
    """The program's own ledger, which the warehouse does not hold yet: its contacts of the week, the
    pairs answered and who unsubscribed, as session tables the SQL joins."""
    own = own_history(feedback_store, program.program_id, day)
    stage.upload("own_contacts", own.contacts.select(pl.col("listener_id").cast(pl.Int64),
                                                     pl.col("requests").cast(pl.Int64)))
    stage.upload("own_answered", own.answered.select(pl.col("listener_id").cast(pl.Int64),
                                                     pl.col("track_id").cast(pl.Int64)))
    stage.upload("own_suppressed", pl.DataFrame({"listener_id": sorted(own.suppressed)}, schema={"listener_id": pl.Int64}))


def build_filter(program: Program, partitions):
    kept_key, decisions_key = key(program, "filtered_candidates"), key(program, "candidate_decisions")
    unified_key = key(program, "unified_candidates")
    chain = build_chain(program.filter_chain)
    policy = ContactPolicy.of_chain(chain)
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
                upload_own_history(stage, context.resources.feedback_store, program, day)
                unified = stored(stage, context.resources.io_manager, unified_key, partition)
                answered = (f"{q.prior_feedback_pairs_sql(program.program_id, day)} "
                            "UNION ALL SELECT listener_id, track_id FROM own_answered")
                prior = (f"{q.recent_request_counts_sql(program.program_id, *batch_window(day))} "
                         "UNION ALL SELECT listener_id, requests AS prior_requests FROM own_contacts")
                columns = list(stage.fetch(f"SELECT * FROM {unified} LIMIT 0").columns)
            with watch.stage("chain"):
                candidates = f"({candidates_sql(unified, answered, prior)})"
                stage.create("decided", chain_query(chain, candidates, SqlChain(tuple(program.marketplaces))))
                counts = stage.fetch("SELECT removed_by, reason, COUNT(*) AS n FROM decided GROUP BY removed_by, "
                                     "reason ORDER BY removed_by, reason")
            with watch.stage("guard"):  # the kept pairs against contact signals read afresh
                kept = "(SELECT listener_id, track_id FROM decided WHERE reason IS NULL)"
                guard = {k: int(v or 0) for k, v in
                         stage.fetch(guard_sql(kept, policy, program.program_id, day)).row(0, named=True).items()}
            total = int(counts["n"].sum())
            removed = counts.filter(pl.col("removed_by").is_not_null())
            by_filter = {f.name: 0 for f in chain if f.enabled} | dict(
                removed.group_by("removed_by", maintain_order=True).agg(pl.col("n").sum()).iter_rows())
            by_reason = dict(removed.group_by("reason").agg(pl.col("n").sum()).sort("reason").iter_rows())
            share = {k: round(v / max(total, 1), 4) for k, v in by_filter.items()}
            keep = ", ".join([*columns, *KEPT_SIGNALS])
            yield Output(stage.output(f"SELECT {keep} FROM decided WHERE reason IS NULL ORDER BY listener_id, track_id",
                                      kept_key.path, partition), "filtered_candidates", metadata={
                "input_rows": total, "removed_by_filter": by_filter, "removed_share_by_filter": share,
                "removed_by_reason": by_reason, "stage_seconds": watch.stages, "duration_s": round(watch.total, 3),
                # One number per filter, so the UI plots each over the partitions.
                **{f"removed:{name}": MetadataValue.int(n) for name, n in by_filter.items()},
                **{f"removed_share:{name}": MetadataValue.float(v) for name, v in share.items()}})
            decisions = ("SELECT listener_id, track_id, 'filter' AS stage, removed_by AS filter, reason, "
                         "batch_date FROM decided WHERE reason IS NOT NULL")
            yield Output(stage.output(decisions, decisions_key.path, partition), "candidate_decisions",
                         metadata={"duration_s": round(watch.total, 3)})
            yield run_stats_suite(kept_key, "no_ineligible_listener_passes", guard, zero(*GUARD_STATS))

    return filter_candidates
