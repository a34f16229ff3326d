"""scored_candidates: both models over the hydrated features, in batches, and the combined score.

The candidates are scored and written a chunk at a time (settings.batch_chunk_rows rows), each chunk with
only its listeners' and tracks' features, so the step's memory follows the chunk, not the day. Rows are in
score order within a chunk (a day within one chunk, the default's 1x day, is in score order whole); no
reader relies on the order: the store, the lake and the reports order or group what they read."""

from datetime import datetime, time, timedelta, timezone
from time import perf_counter

import polars as pl

from dagster import AssetDep, AssetExecutionContext, AssetIn, MetadataValue, Output, asset

from music_feedback import settings
from music_feedback.defs.common import OWNER, PREVIEW_ROWS, Stopwatch, frame_metadata, key
from music_feedback.io.chunks import FrameChunks
from music_feedback.defs.models.assets import ASSET_NAMES as MODEL_ASSETS
from music_feedback.defs.partitions import MODEL_WEEK_OF_DAY, batch_date
from music_feedback.programs.model import Program
from music_feedback.scoring.cache.port import ScoreCache
from music_feedback.scoring.cached_scoring import score_with_cache
from music_feedback.scoring.combine import band_counts, combined_score, distribution_of
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
    scoring_settings = program.scoring

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
        description=f"Candidates scored by both models in batches of {scoring_settings.batch_size}; score = "
                    f"propensity^{scoring_settings.propensity_weight} * affinity^{1 - scoring_settings.propensity_weight:g} "
                    "in [0, 1], with the champions of the day from the model registry; a pair cached with "
                    "the same models and feature values is not scored again. Each row keeps the feature values "
                    "and model versions used.",
    )
    def scored_candidates(context: AssetExecutionContext, scorer: Scorer, score_cache: ScoreCache,
                          model_registry: ModelRegistry, candidates: pl.LazyFrame,
                          listeners: pl.LazyFrame, tracks: pl.LazyFrame):
        watch = Stopwatch()
        day = batch_date(context)
        with watch.stage("champions"):  # the models that were champion on `day`, never later ones
            models = {role: model_registry.champion_on(program.model(role).model_id, day)
                      for role in ("propensity", "affinity")}
        propensity_model, affinity_model = models["propensity"], models["affinity"]
        chunk_rows = settings.batch_chunk_rows()
        total = candidates.select(pl.len()).collect().item()  # the Parquet footer
        # the batch's own moment (D+1 02:00 UTC) as "now", so a backfill ages the cache as the day did
        now = datetime.combine(day + timedelta(days=1), time(2), tzinfo=timezone.utc)
        features = feature_columns(program)

        def chunks():
            seen = {"rows": 0, "score_sum": 0.0, "bands": {"high": 0, "medium": 0, "low": 0}, "hits": 0,
                    "scored_now": 0, "first": None, "stages": {"champions": watch.stages["champions"]}}
            # at least one chunk, so an empty day is written with its columns
            for offset in range(0, max(total, 1), chunk_rows):
                out = _score_chunk(candidates, listeners, tracks, offset, chunk_rows, total, models, now,
                                   features, seen)
                seen["first"] = out.head(PREVIEW_ROWS) if seen["first"] is None else seen["first"]
                seen["rows"] += out.height
                seen["score_sum"] += float(out["score"].sum() or 0)
                for band, n in band_counts(out["score"], program.metrics.score_bands).items():
                    seen["bands"][band] += n
                yield out
            n = seen["rows"]
            context.add_asset_metadata(frame_metadata(
                seen["first"], watch.total, **{"dagster/row_count": n},
                score_distribution=MetadataValue.json(distribution_of(seen["bands"], n)),
                batches=-(-n // scoring_settings.batch_size), mean_score=round(seen["score_sum"] / n, 4) if n else 0.0,
                stage_seconds={k: round(v, 3) for k, v in seen["stages"].items()},
                model_versions=MetadataValue.json([propensity_model.version, affinity_model.version]),
                score_cache_hits=seen["hits"], scored_now=seen["scored_now"],
                score_cache_hit_rate=round(seen["hits"] / max(n, 1), 4), chunks=-(-max(total, 1) // chunk_rows)))

        def _score_chunk(candidates, listeners, tracks, offset, size, total, models, now, features, seen):
            stages = seen["stages"]
            t = perf_counter()
            if total <= size:  # one chunk: every feature row is the chunk's, no filter to pay
                part, ls, ts = candidates.collect(), listeners.collect(), tracks.collect()
            else:
                part = candidates.slice(offset, size).collect()
                ls = listeners.filter(pl.col("listener_id").is_in(part["listener_id"].unique().implode())).collect()
                ts = tracks.filter(pl.col("track_id").is_in(part["track_id"].unique().implode())).collect()
            stages["read"] = stages.get("read", 0.0) + perf_counter() - t
            t = perf_counter()
            frame = candidate_features(part, ls, ts, day)
            del part, ls, ts
            stages["features"] = stages.get("features", 0.0) + perf_counter() - t
            t = perf_counter()
            frame, cache_stats = score_with_cache(program, scorer, score_cache, frame, models, now)
            seen["hits"] += cache_stats["score_cache_hits"]
            seen["scored_now"] += cache_stats["scored_now"]
            stages["scoring"] = stages.get("scoring", 0.0) + perf_counter() - t
            return frame.with_columns(
                pl.lit(models["propensity"].version).alias("propensity_model_version"),
                pl.lit(models["affinity"].version).alias("affinity_model_version"),
            ).with_columns(
                combined_score(pl.col("propensity_score"), pl.col("affinity_score"), scoring_settings.propensity_weight)
                .alias("score"),
                pl.struct(features).alias("features"),  # for the retrain; a struct column, not JSON text (~0.07 s)
            ).sort("score", "listener_id", "track_id", descending=[True, False, False])

        if total <= chunk_rows:  # a frame: polars writes one faster than the chunks' Arrow writer (~0.1 s)
            return Output(next(iter(list(chunks()))))
        return Output(FrameChunks(chunks()))

    return scored_candidates
