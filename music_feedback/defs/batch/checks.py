"""The batch's checks: one blocking, partitioned check (or more) on every stage, what each measures, and the
features' freshness. The checks computed from what a stage persisted run as standalone checks, one step per
stage (defs/batch/assets/checks.py); the filter's guard runs inside its stage. A failed check stops the stages
below it."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

import polars as pl
from dagster import AssetCheckSpec, FreshnessPolicy

from music_feedback.programs.model import Program
from music_feedback.quality.expectations import Between, NotNull, Unique
from music_feedback.store.base import CandidateStore
from music_feedback.transforms.validate import REQUIRED as EXTRACT_REQUIRED
from music_feedback.warehouse.port import date_literal, release_window_start


def _spec(name: str, asset_key, partitions, description: str, reads=()) -> AssetCheckSpec:
    """`reads`: the other assets the check loads besides its own (a standalone check's inputs)."""
    return AssetCheckSpec(name, asset=asset_key, blocking=True, partitions_def=partitions,
                          description=description, additional_deps=list(reads))


# --- extract: raw_streams -----------------------------------------------------------------------------------
MAX_REJECTED_SHARE = 0.01  # more than this many malformed rows means a broken feed, not noise
WINDOW_STATS = ("rows_unaccounted", "null_required_fields", "played_outside_day", "released_outside_window",
                "completion_below_95", "play_count_below_1")


def extract_checks(raw_key, partitions) -> list[AssetCheckSpec]:
    return [
        _spec("extract_fields_valid", raw_key, partitions,
              "Every extracted row accounted for (kept or set aside); kept rows are plays of day D, of "
              "tracks released D-6..D, completed >= 95%: what the connector's query promises."),
        _spec("row_count_vs_previous_day", raw_key, partitions,
              "Row count within 0.5x-2x of the previous partition's."),
        _spec("rejected_share_within_limit", raw_key, partitions,
              f"At most {MAX_REJECTED_SHARE:.0%} of extracted rows set aside as malformed."),
    ]


def window_stats_sql(raw: str, day: date) -> str:
    """What a wrong connector query or binding would break, over the stored plays (`raw`, a relation): rows
    of another day or release window, incomplete plays, required fields missing; and valid_rows, which
    with the set-aside rows must add up to what the warehouse gives for the day."""
    start, nulls = release_window_start(day), " + ".join(
        f"CASE WHEN {c} IS NULL THEN 1 ELSE 0 END" for c in EXTRACT_REQUIRED)
    return f"""
        SELECT COUNT(*) AS valid_rows, COALESCE(SUM({nulls}), 0) AS null_required_fields,
               COALESCE(SUM(CASE WHEN CAST(played_at AS DATE) <> {date_literal(day)} THEN 1 ELSE 0 END), 0)
                   AS played_outside_day,
               COALESCE(SUM(CASE WHEN track_release_date BETWEEN {date_literal(start)} AND {date_literal(day)}
                            THEN 0 ELSE 1 END), 0) AS released_outside_window,
               COALESCE(SUM(CASE WHEN completion_rate < 0.95 THEN 1 ELSE 0 END), 0) AS completion_below_95,
               COALESCE(SUM(CASE WHEN play_count < 1 THEN 1 ELSE 0 END), 0) AS play_count_below_1
        FROM {raw} r"""


# --- unify: unified_candidates ------------------------------------------------------------------------------
UNIFIED_REQUIRED = ("listener_id", "track_id", "play_count", "completion_rate", "engagement_score",
                    "first_played_at", "track_release_date")
UNIFY_STATS = ("rows_minus_raw_pairs", "duplicate_pairs", "plays_lost", "null_required_fields",
               "missing_context")


def unify_checks(asset_key, partitions, raw_key) -> list[AssetCheckSpec]:
    return [_spec("unique_and_complete", asset_key, partitions,
                  "One row per distinct listener+track of the raw plays (none lost, none doubled by a join), "
                  "plays conserved, required fields and context present.", [raw_key])]


def unify_stats_sql(raw: str, unified: str) -> str:
    """Compared with the raw plays, not with the output's own shape: a join that multiplies rows, a
    group-by on the wrong keys, or a lost context lookup shows here. Unknown listeners have no marketplace
    yet (trust removes them next); every play has a genre."""
    nulls = " + ".join(f"CASE WHEN {c} IS NULL THEN 1 ELSE 0 END" for c in UNIFIED_REQUIRED)
    return f"""
        SELECT u.n - (SELECT COUNT(*) FROM (SELECT DISTINCT listener_id, track_id FROM {raw} r) p)
                   AS rows_minus_raw_pairs,
               u.n - (SELECT COUNT(*) FROM (SELECT DISTINCT listener_id, track_id FROM {unified} v) d)
                   AS duplicate_pairs,
               COALESCE((SELECT SUM(play_count) FROM {raw} r), 0) - u.plays AS plays_lost,
               u.nulls AS null_required_fields, u.no_genre AS missing_context
        FROM (SELECT COUNT(*) AS n, COALESCE(SUM(play_count), 0) AS plays, COALESCE(SUM({nulls}), 0) AS nulls,
                     COALESCE(SUM(CASE WHEN genre IS NULL THEN 1 ELSE 0 END), 0) AS no_genre
              FROM {unified} w) u"""


# --- filter: filtered_candidates ----------------------------------------------------------------------------
def filter_checks(kept_key, partitions) -> list[AssetCheckSpec]:
    """In the filter's step: the contact state it judges is the batch's moment's (see assets/checks.py)."""
    return [_spec("no_ineligible_listener_passes", kept_key, partitions,
                  "No opted-out or untrusted listener, nobody over the weekly cap.")]


def filter_row_count_check(kept_key, partitions, unified_key) -> AssetCheckSpec:
    return _spec("row_count_vs_previous_day", kept_key, partitions,
                 "Eligible candidates within 0.5x-2x of the previous partition's.", [unified_key])


# --- features: listener_features, track_features ------------------------------------------------------------
# Fresh when materialized between 02:00 (the batch starts) and the 03:00 deadline, every day.
FRESHNESS = FreshnessPolicy.cron(deadline_cron="0 3 * * *", lower_bound_delta=timedelta(hours=1), timezone="UTC")

LISTENER_CHECKS = [Unique(("listener_id",)), NotNull("listener_id"), NotNull("feedback_history"),
                   Between("engagement_score", 0.0, 1.0), Between("listening_frequency", 0.0, None),
                   Between("feedback_history", 0.0, None)]
TRACK_CHECKS = [Unique(("track_id",)), NotNull("track_id"), NotNull("similar_track_ratings"),
                Between("artist_popularity", 0.0, 1.0), Between("similar_track_ratings", 0.0, 1.0)]


def feature_check(asset_key, kind: str, partitions=None) -> AssetCheckSpec:
    return _spec(f"{kind}_features_valid", asset_key, partitions,
                 f"{kind.capitalize()} features: one row per {kind}, no nulls where scoring needs a value, "
                 "values within their ranges.")


# --- score: scored_candidates -------------------------------------------------------------------------------
SCORE_STATS = ("scores_outside_0_1", "scores_null", "rows_minus_candidates", "duplicate_pairs",
               "model_versions_null")


def score_checks(asset_key, partitions, candidates_key) -> list[AssetCheckSpec]:
    return [_spec("scores_in_range", asset_key, partitions,
                  "Scores in [0, 1], non-null; listener+track unique.", [candidates_key])]


def score_stats(out: pl.LazyFrame, candidates: int) -> dict:
    """Every score in [0, 1] (NaN counts as outside), one row per eligible candidate, versions recorded;
    counted by the streaming engine over the stored scan, so the day's size does not matter."""
    cols = ("score", "propensity_score", "affinity_score")
    return out.lazy().select(
        pl.sum_horizontal((~pl.col(c).is_between(0.0, 1.0)).fill_null(False) | pl.col(c).is_nan().fill_null(False)
                          for c in cols).sum().alias("scores_outside_0_1"),
        pl.sum_horizontal(pl.col(c).is_null() for c in cols).sum().alias("scores_null"),
        (pl.len() - candidates).alias("rows_minus_candidates"),
        (pl.len() - pl.struct("listener_id", "track_id").n_unique()).alias("duplicate_pairs"),
        pl.sum_horizontal(pl.col(c).is_null() for c in ("propensity_model_version", "affinity_model_version"))
        .sum().alias("model_versions_null"),
    ).collect(engine="streaming").row(0, named=True)


# --- store: stored_candidates -------------------------------------------------------------------------------
SAMPLE_LISTENERS = 200
READ_BACK_STATS = ("stored_minus_written", "sample_rows_missing", "sample_rows_unexpected")


def store_checks(asset_key, partitions, scored_key) -> list[AssetCheckSpec]:
    return [_spec("store_returns_what_was_scored", asset_key, partitions,
                  "The store's count for the day equals the rows written, and a sample of listeners reads "
                  "back exactly their scored rows.", [scored_key])]


def read_back_stats(store: CandidateStore, program: Program, scored: pl.LazyFrame, day: date, channel_rows) -> dict:
    """What the store returns for the day against what was scored: the day's count, and the exact rows
    (track, channel, score) of a deterministic sample of listeners, read through the serving path. Only the
    sample's rows are built (`channel_rows`: the store stage's own rows per channel); the count streams."""
    as_of = datetime.combine(day + timedelta(days=1), time(), tzinfo=timezone.utc)  # a backfill is not yet expired
    listeners = scored.select(pl.col("listener_id").unique().sort()).collect(engine="streaming").to_series()
    sample = listeners.gather_every(max(len(listeners) // SAMPLE_LISTENERS, 1)).to_list() if len(listeners) else []
    rows = channel_rows(program, scored.filter(pl.col("listener_id").is_in(sample)), day)
    expected = {(r["listener_id"], r["track_id"], r["channel"], round(r["score"], 9)) for r in rows.iter_rows(named=True)}
    got = {(r["listener_id"], r["track_id"], r["channel"], round(float(r["score"]), 9))
           for lst in sample for r in store.for_listener(program.program_id, lst, now=as_of)
           if r["batch_date"] == day.isoformat()}
    total = scored.select(pl.len()).collect().item()  # the Parquet footer
    voice = scored.select(pl.col("voice_enabled").fill_null(False).sum()).collect(engine="streaming").item() \
        if "voice_enabled" in scored.collect_schema().names() else 0
    written = sum(total if c.type == "email" else int(voice) for c in program.enabled_channels())  # as channel_rows
    return {"stored_minus_written": store.count(program.program_id, day.isoformat(), now=as_of) - written,
            "sample_rows_missing": len(expected - got), "sample_rows_unexpected": len(got - expected)}
