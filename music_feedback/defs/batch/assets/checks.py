"""The batch's standalone checks: those computed from what a stage persisted (its stored frame through the IO
manager, its materialization's metadata, the previous partition's, the candidate store), so each can be
re-run alone from the UI for any day. One step per stage (a multi_asset_check, subsettable), blocking and
partitioned like the stage: in the daily job a failed check stops the stages after it. Great Expectations
judges, through the same `quality` functions the stages' own checks use.

The one check that stays inside its stage is the filter's `no_ineligible_listener_passes`: it judges the
contact state at the batch's moment (opt-outs, trust and bot scores are current-state columns of the
warehouse), so re-run later it would flag a listener who opted out after being asked."""

from datetime import timedelta

import polars as pl
from dagster import (AssetCheckExecutionContext, AssetCheckKey, AssetChecksDefinition, DailyPartitionsDefinition,
                     multi_asset_check)

from music_feedback.defs.batch.assets.features import KINDS
from music_feedback.defs.batch.assets.filter import SEED_PASS_RATE
from music_feedback.defs.batch.assets.store import channel_rows
from music_feedback.defs.batch.assets.unify import stored
from music_feedback.defs.batch.checks import (MAX_REJECTED_SHARE, READ_BACK_STATS, SCORE_STATS, UNIFY_STATS,
                                              WINDOW_STATS, extract_checks, feature_check, filter_row_count_check,
                                              read_back_stats, score_checks, score_stats, store_checks,
                                              unify_checks, unify_stats_sql, window_stats_sql)
from music_feedback.defs.common import key
from music_feedback.defs.partitions import batch_date
from music_feedback.programs.model import Program
from music_feedback.quality.checks import (StatsSuite, judge_stats_suites, materialization_metadata,
                                           row_count_expectation, row_count_suite, run_row_count_suite,
                                           run_stats_suite, stats_suite, zero)
from music_feedback.quality.expectations import Between
from music_feedback.quality.frame_stats import violation_counts
from music_feedback.store.base import CandidateStore
from music_feedback.transforms.validate import malformed_rows_query
from music_feedback.warehouse.port import Warehouse, bind_batch_window, text_literal


def _stored(context: AssetCheckExecutionContext, asset_key) -> pl.LazyFrame:
    """The asset's stored frame for the check's day, a scan through the IO manager. Read here rather than
    as step inputs: an input costs two event-log writes (STEP_INPUT, LOADED_INPUT) and the scan is lazy
    anyway; the specs' `reads` keep the lineage."""
    return context.resources.io_manager.scan(list(asset_key.path), context.partition_key)


def _selected(context: AssetCheckExecutionContext, asset_key, name: str) -> bool:
    return AssetCheckKey(asset_key, name) in context.selected_asset_check_keys


def _metadata(context, asset_key, day) -> dict:
    meta = materialization_metadata(context.instance, asset_key, day)
    if meta is None:
        raise ValueError(f"{asset_key.to_user_string()} has no materialization for {day}: materialize it first")
    return meta


def _stats(context, queries: dict) -> dict:
    """Each query's one row of statistics, computed where the stage's data lives (the warehouse's session
    over the stored outputs): nothing of the day's rows is pulled into this process."""
    warehouse: Warehouse = context.resources.warehouse
    out = {}
    with warehouse.stage_session() as stage:
        relations = {name: stored(stage, context.resources.io_manager, asset_key, context.partition_key)
                     for name, asset_key in queries.pop("_relations").items()}
        for name, build in queries.items():
            out[name] = {k: (int(v) if v is not None else 0) for k, v in
                         stage.fetch(build(**relations)).row(0, named=True).items()}
    return out


def extract_check(program: Program, partitions) -> AssetChecksDefinition:
    raw_key = key(program, "raw_streams")
    connector = program.connector

    @multi_asset_check(name=f"{program.slug}__extract_checks", specs=extract_checks(raw_key, partitions),
                       can_subset=True, required_resource_keys={"io_manager", "warehouse"})
    def extract(context: AssetCheckExecutionContext):
        day = batch_date(context)
        warehouse: Warehouse = context.resources.warehouse
        meta = _metadata(context, raw_key, day)
        rejected, valid = (int(meta[k]) for k in ("rejected_rows", "dagster/row_count"))
        query = bind_batch_window(connector.config.query, day)
        malformed = bind_batch_window(malformed_rows_query(connector.config.table), day)
        suites = []  # judged together: one GX validation for the step, not one per check
        if _selected(context, raw_key, "extract_fields_valid"):
            stats = _stats(context, {"_relations": {"raw": raw_key},
                                     "window": lambda raw: window_stats_sql(raw, day),
                                     # what the warehouse gives for the day, counted afresh
                                     "extracted": lambda raw: f"SELECT (SELECT COUNT(*) FROM ({query}) q) + "
                                                              f"(SELECT COUNT(*) FROM ({malformed}) m) AS n"})
            window = stats["window"]
            window["rows_unaccounted"] = stats["extracted"]["n"] - window.pop("valid_rows") - rejected
            suites.append(stats_suite("extract_fields_valid", {k: window[k] for k in WINDOW_STATS},
                                      zero(*WINDOW_STATS)))
        if _selected(context, raw_key, "row_count_vs_previous_day"):
            def day_before_in_warehouse() -> int:
                sql = bind_batch_window(connector.config.query, day - timedelta(days=1))
                with warehouse.session():
                    return int(warehouse.fetch(f"SELECT COUNT(*) AS n FROM ({sql}) q")["n"][0])
            suites.append(row_count_suite(valid, *row_count_expectation(
                context.instance, raw_key, day, day_before_in_warehouse,
                "the connector's rows for the day before, counted in the warehouse")))
        if _selected(context, raw_key, "rejected_share_within_limit"):
            extracted = valid + rejected
            share = rejected / max(extracted, 1)
            suites.append(StatsSuite(
                "rejected_share_within_limit", {"rejected_share": share},
                [Between("rejected_share", 0.0, MAX_REJECTED_SHARE)],
                f"{share:.1%} of {extracted:,} extracted rows set aside (limit {MAX_REJECTED_SHARE:.0%})",
                {"rejected_share": round(share, 6), "rejected_rows": rejected, "extracted_rows": extracted}))
        yield from judge_stats_suites(raw_key, suites)

    return extract


def unify_check(program: Program, partitions) -> AssetChecksDefinition:
    raw_key, unified_key = key(program, "raw_streams"), key(program, "unified_candidates")

    @multi_asset_check(name=f"{program.slug}__unify_checks", specs=unify_checks(unified_key, partitions, raw_key),
                       required_resource_keys={"io_manager", "warehouse"})
    def unify(context: AssetCheckExecutionContext):
        stats = _stats(context, {"_relations": {"raw": raw_key, "unified": unified_key},
                                 "unify": unify_stats_sql})["unify"]
        yield run_stats_suite(unified_key, "unique_and_complete", stats, zero(*UNIFY_STATS))

    return unify


def filter_check(program: Program, partitions) -> AssetChecksDefinition:
    kept_key, unified_key = key(program, "filtered_candidates"), key(program, "unified_candidates")

    @multi_asset_check(name=f"{program.slug}__filter_checks",
                       specs=[filter_row_count_check(kept_key, partitions, unified_key)],
                       required_resource_keys={"io_manager", "warehouse"})
    def filtered(context: AssetCheckExecutionContext):
        day = batch_date(context)
        rows = int(_metadata(context, kept_key, day)["dagster/row_count"])

        def seed_pass_rate() -> int:  # counted in the warehouse: only the first partition's baseline reads it
            markets = ", ".join(text_literal(m) for m in program.marketplaces)
            where = (f" JOIN listeners l ON l.listener_id = u.listener_id WHERE l.marketplace IN ({markets})"
                     if program.marketplaces else "")
            n = _stats(context, {"_relations": {"unified": unified_key},
                                 "n": lambda unified: f"SELECT COUNT(*) AS n FROM {unified} u{where}"})["n"]["n"]
            return int(n * SEED_PASS_RATE)
        yield run_row_count_suite(kept_key, rows, *row_count_expectation(
            context.instance, kept_key, day, seed_pass_rate,
            "the seed's filter pass rate (13.3%) of today's candidates in the program's marketplaces"))

    return filtered


def features_check(program: Program, partitions) -> AssetChecksDefinition:
    keys = {k.kind: key(program, k.name) for k in KINDS}

    @multi_asset_check(name=f"{program.slug}__features_checks", can_subset=True,
                       specs=[feature_check(keys[k.kind], k.kind, partitions) for k in KINDS],
                       required_resource_keys={"io_manager"})
    def features(context: AssetCheckExecutionContext):
        for kind in KINDS:
            if _selected(context, keys[kind.kind], f"{kind.name}_valid"):
                # each expectation's violations counted over the stored scan, then judged by GX
                stats = violation_counts(_stored(context, keys[kind.kind]), kind.checks)
                yield run_stats_suite(keys[kind.kind], f"{kind.name}_valid", stats, zero(*stats))

    return features


def score_check(program: Program, partitions) -> AssetChecksDefinition:
    scored_key, kept_key = key(program, "scored_candidates"), key(program, "filtered_candidates")

    @multi_asset_check(name=f"{program.slug}__score_checks", specs=score_checks(scored_key, partitions, kept_key),
                       required_resource_keys={"io_manager"})
    def scores(context: AssetCheckExecutionContext):
        candidates = _stored(context, kept_key).select(pl.len()).collect().item()  # the Parquet footer
        yield run_stats_suite(scored_key, "scores_in_range", score_stats(_stored(context, scored_key), candidates),
                              zero(*SCORE_STATS))

    return scores


def store_check(program: Program, partitions) -> AssetChecksDefinition:
    stored_key, scored_key = key(program, "stored_candidates"), key(program, "scored_candidates")

    @multi_asset_check(name=f"{program.slug}__store_checks", specs=store_checks(stored_key, partitions, scored_key),
                       required_resource_keys={"io_manager", "candidate_store"})
    def store(context: AssetCheckExecutionContext):
        candidate_store: CandidateStore = context.resources.candidate_store
        yield run_stats_suite(stored_key, "store_returns_what_was_scored",
                              read_back_stats(candidate_store, program, _stored(context, scored_key),
                                              batch_date(context), channel_rows), zero(*READ_BACK_STATS))

    return store


def batch_checks(program: Program, daily: DailyPartitionsDefinition) -> list[AssetChecksDefinition]:
    return [build(program, daily) for build in (extract_check, unify_check, filter_check, features_check,
                                                score_check, store_check)]
