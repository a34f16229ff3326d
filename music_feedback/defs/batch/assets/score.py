"""scored_candidates: both models over the hydrated features, in batches, and the combined score."""

import polars as pl
from datetime import datetime, time, timedelta, timezone

from dagster import AssetDep, AssetExecutionContext, AssetIn, MetadataValue, Output, asset

from music_feedback.defs.common import OWNER, Stopwatch, frame_metadata, key
from music_feedback.defs.models.assets import ASSET_NAMES as MODEL_ASSETS
from music_feedback.defs.partitions import MODEL_WEEK_OF_DAY, batch_date
from music_feedback.programs.model import Program
from music_feedback.scoring.cache.port import ScoreCache
from music_feedback.scoring.cached_scoring import score_with_cache
from music_feedback.scoring.combine import combined_score, score_distribution
from music_feedback.scoring.features import candidate_features
from music_feedback.scoring.model import model_columns
from music_feedback.scoring.registry.port import ModelRegistry
from music_feedback.scoring.scorer import Scorer



def feature_columns(program: Program) -> list[str]:
    cols: list[str] = []
    for m in program.scoring_models:
        cols += [c for c in model_columns(m.features) if c not in cols]
    return cols


def build_score(program: Program, partitions):
    asset_key = key(program, "scored_candidates")
    settings = program.scoring

    @asset(
        key=asset_key, group_name=program.slug, owners=[OWNER], kinds={"scikitlearn", "polars"},
        partitions_def=partitions,
        ins={"candidates": AssetIn(key(program, "filtered_candidates")),
             "listeners": AssetIn(key(program, "listener_features")),
             "tracks": AssetIn(key(program, "track_features"))},
        # Lineage only: the champions are read from the registry, so a retrain's reach shows in the graph,
        # and the models need not be materialized in the batch's run (nor be in its job).
        deps=[AssetDep(key(program, name), partition_mapping=MODEL_WEEK_OF_DAY)
              for name in MODEL_ASSETS.values()],
        description=f"Candidates scored by both models in batches of {settings.batch_size}; score = "
                    f"propensity^{settings.propensity_weight} * affinity^{1 - settings.propensity_weight:g} "
                    "in [0, 1], with the champions of the day from the model registry; a pair cached with "
                    "the same models and feature values is not scored again. Each row keeps the feature values "
                    "and model versions used.",
    )
    def scored_candidates(context: AssetExecutionContext, scorer: Scorer, score_cache: ScoreCache,
                          model_registry: ModelRegistry, candidates: pl.DataFrame,
                          listeners: pl.DataFrame, tracks: pl.DataFrame):
        watch = Stopwatch()
        day = batch_date(context)
        with watch.stage("champions"):  # the models that were champion on `day`, never later ones
            models = {role: model_registry.champion_on(program.model(role).model_id, day)
                      for role in ("propensity", "affinity")}
        propensity_model, affinity_model = models["propensity"], models["affinity"]
        with watch.stage("features"):
            frame = candidate_features(candidates, listeners, tracks, day)
        with watch.stage("scoring"):
            # the batch's own moment (D+1 02:00 UTC) as "now", so a backfill ages the cache as the day did
            now = datetime.combine(day + timedelta(days=1), time(2), tzinfo=timezone.utc)
            frame, cache_stats = score_with_cache(program, scorer, score_cache, frame, models, now)
        features = feature_columns(program)
        out = frame.with_columns(
            pl.lit(propensity_model.version).alias("propensity_model_version"),
            pl.lit(affinity_model.version).alias("affinity_model_version"),
        ).with_columns(
            combined_score(pl.col("propensity_score"), pl.col("affinity_score"), settings.propensity_weight)
            .alias("score"),
            pl.struct(features).alias("features"),  # for the retrain; a struct column, not JSON text (~0.07 s)
        ).sort("score", "listener_id", "track_id", descending=[True, False, False])
        dist = score_distribution(out["score"], program.metrics.score_bands)
        return Output(out, metadata=frame_metadata(
            out, watch.total, score_distribution=MetadataValue.json(dist), batches=-(-out.height // settings.batch_size),
            mean_score=round(float(out["score"].mean() or 0), 4), stage_seconds=watch.stages,
            model_versions=MetadataValue.json([propensity_model.version, affinity_model.version]), **cache_stats))

    return scored_candidates
