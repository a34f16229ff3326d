"""The batch's checks: one blocking, partitioned check (or more) on every stage, what each measures, and the
features' freshness. The checks computed from what a stage persisted run as standalone checks, one step per
stage (defs/batch/assets/checks.py); the filter's guard runs inside its stage. A failed check stops the stages
below it."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

import polars as pl
from dagster import AssetCheckSpec, FreshnessPolicy

from music_feedback.policy import ContactPolicy
from music_feedback.policy.contact import policy_frame
from music_feedback.programs.model import Program
from music_feedback.quality.expectations import Between, InSet, NotNull, Unique
from music_feedback.store.base import CandidateStore
from music_feedback.transforms.unify import packable, pair_key
from music_feedback.transforms.validate import REQUIRED as EXTRACT_REQUIRED
from music_feedback.warehouse.port import release_window_start


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


def window_stats(valid: pl.DataFrame | pl.LazyFrame, rejected: pl.DataFrame | int, extracted: int, day) -> dict:
    """What a wrong connector query or binding would break: rows of another day or release window,
    incomplete plays, rows lost between the query and the split. `valid` may be the stored frame's scan,
    `rejected` the rejected rows' count."""
    start = release_window_start(day)
    rejected_rows = rejected if isinstance(rejected, int) else rejected.height
    stats = valid.lazy().select(
        pl.len().alias("valid_rows"),
        pl.sum_horizontal(pl.col(c).is_null() for c in EXTRACT_REQUIRED).sum().alias("null_required_fields"),
        (pl.col("played_at").cast(pl.Date) != day).sum().alias("played_outside_day"),
        (~pl.col("track_release_date").is_between(start, day)).sum().alias("released_outside_window"),
        (pl.col("completion_rate") < 0.95).sum().alias("completion_below_95"),
        (pl.col("play_count") < 1).sum().alias("play_count_below_1"),
    ).collect().row(0, named=True)
    return {"rows_unaccounted": extracted - stats.pop("valid_rows") - rejected_rows,
            **{k: int(v or 0) for k, v in stats.items()}}


# --- unify: unified_candidates ------------------------------------------------------------------------------
UNIFIED_REQUIRED = ("listener_id", "track_id", "play_count", "completion_rate", "engagement_score",
                    "first_played_at", "track_release_date")
UNIFY_COLUMNS = ("listener_id", "track_id", *UNIFIED_REQUIRED[2:], "genre")  # what unify_stats reads
UNIFY_STATS = ("rows_minus_raw_pairs", "duplicate_pairs", "plays_lost", "null_required_fields",
               "missing_context")


def unify_checks(asset_key, partitions, raw_key) -> list[AssetCheckSpec]:
    return [_spec("unique_and_complete", asset_key, partitions,
                  "One row per distinct listener+track of the raw plays (none lost, none doubled by a join), "
                  "plays conserved, required fields and context present.", [raw_key])]


def distinct_pairs(frame: pl.DataFrame | pl.LazyFrame) -> int:
    """Distinct listener+track pairs: one int64 key hashed when the ids fit one, else counted on the
    sorted keys (a third of the memory of hashing two columns)."""
    frame = frame.lazy()
    if packable(frame):
        keys = frame.select(pair_key()).collect().to_series()
        if keys.len() < 2 or (keys.diff().slice(1) > 0).all():  # strictly increasing, as the unify sorts it:
            return keys.len()  # all distinct, without hashing 1.5M keys
        return keys.n_unique()
    keys = frame.select("listener_id", "track_id").sort("listener_id", "track_id").collect()
    new_pair = (pl.col("listener_id") != pl.col("listener_id").shift()) | \
        (pl.col("track_id") != pl.col("track_id").shift())
    return int(keys.select(new_pair.fill_null(True).sum()).item() or 0)


def unify_stats(raw, out) -> dict:
    """Compared with the raw plays, not with the output's own shape: a join that multiplies rows, a
    group-by on the wrong keys, or a lost context lookup shows here."""
    return {
        "rows_minus_raw_pairs": out.height - distinct_pairs(raw),
        "duplicate_pairs": out.height - distinct_pairs(out),
        "plays_lost": int((raw.lazy().select(pl.col("play_count").sum()).collect().item() or 0)
                          - (out["play_count"].sum() or 0)),
        "null_required_fields": int(out.select(
            pl.sum_horizontal(pl.col(c).is_null() for c in UNIFIED_REQUIRED).sum()).item() or 0),
        # Unknown listeners have no marketplace yet (trust removes them next); every play has a genre.
        "missing_context": int(out["genre"].null_count()),
    }


# --- filter: filtered_candidates ----------------------------------------------------------------------------
def filter_checks(kept_key, partitions) -> list[AssetCheckSpec]:
    """In the filter's step: the contact state it judges is the batch's moment's (see assets/checks.py)."""
    return [_spec("no_ineligible_listener_passes", kept_key, partitions,
                  "No opted-out or untrusted listener, nobody over the weekly cap.")]


def filter_row_count_check(kept_key, partitions, unified_key) -> AssetCheckSpec:
    return _spec("row_count_vs_previous_day", kept_key, partitions,
                 "Eligible candidates within 0.5x-2x of the previous partition's.", [unified_key])


def guard_frame(kept: pl.DataFrame, signals: pl.DataFrame, contacts: pl.DataFrame | None = None) -> pl.DataFrame:
    """The kept candidates joined to contact signals read afresh from the warehouse (and the program's own
    ledger), so the check does not trust the frames the filters loaded."""
    return policy_frame(kept, signals, contacts)


def guard_expectations(policy: ContactPolicy) -> list:
    """Always all of contact policy, whatever the chain enables: no program can configure it away."""
    return [NotNull("listener_id"), NotNull("track_id"),
            NotNull("bot_score"), Between("bot_score", 0.0, policy.max_bot_score - 1e-9),
            NotNull("is_authentic"), InSet("is_authentic", [True]),
            NotNull("opted_out"), InSet("opted_out", [False]),
            Between("requests_in_week", 0, policy.max_requests_per_week)]


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


def score_stats(out: pl.DataFrame, candidates: int) -> dict:
    """Every score in [0, 1] (NaN counts as outside), one row per eligible candidate, versions recorded."""
    cols = ("score", "propensity_score", "affinity_score")
    return out.select(
        pl.sum_horizontal((~pl.col(c).is_between(0.0, 1.0)).fill_null(False) | pl.col(c).is_nan().fill_null(False)
                          for c in cols).sum().alias("scores_outside_0_1"),
        pl.sum_horizontal(pl.col(c).is_null() for c in cols).sum().alias("scores_null"),
        (pl.len() - candidates).alias("rows_minus_candidates"),
        (pl.len() - pl.struct("listener_id", "track_id").n_unique()).alias("duplicate_pairs"),
        pl.sum_horizontal(pl.col(c).is_null() for c in ("propensity_model_version", "affinity_model_version"))
        .sum().alias("model_versions_null"),
    ).row(0, named=True)


# --- store: stored_candidates -------------------------------------------------------------------------------
SAMPLE_LISTENERS = 200
READ_BACK_STATS = ("stored_minus_written", "sample_rows_missing", "sample_rows_unexpected")


def store_checks(asset_key, partitions, scored_key) -> list[AssetCheckSpec]:
    return [_spec("store_returns_what_was_scored", asset_key, partitions,
                  "The store's count for the day equals the rows written, and a sample of listeners reads "
                  "back exactly their scored rows.", [scored_key])]


def read_back_stats(store: CandidateStore, program: Program, rows: pl.DataFrame, day: date) -> dict:
    """What the store returns for the day against what was scored: the day's count, and the exact rows
    (track, channel, score) of a deterministic sample of listeners, read through the serving path."""
    as_of = datetime.combine(day + timedelta(days=1), time(), tzinfo=timezone.utc)  # a backfill is not yet expired
    listeners = rows.select(pl.col("listener_id").unique().sort()).to_series()
    sample = listeners.gather_every(max(len(listeners) // SAMPLE_LISTENERS, 1)).to_list() if len(listeners) else []
    expected = {(r["listener_id"], r["track_id"], r["channel"], round(r["score"], 9))
                for r in rows.filter(pl.col("listener_id").is_in(sample)).iter_rows(named=True)}
    got = {(r["listener_id"], r["track_id"], r["channel"], round(float(r["score"]), 9))
           for lst in sample for r in store.for_listener(program.program_id, lst, now=as_of)
           if r["batch_date"] == day.isoformat()}
    return {"stored_minus_written": store.count(program.program_id, day.isoformat(), now=as_of) - rows.height,
            "sample_rows_missing": len(expected - got), "sample_rows_unexpected": len(got - expected)}
