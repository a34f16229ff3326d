"""Score the day's candidates with both champions, skipping pairs the score cache already holds."""
from __future__ import annotations

from datetime import datetime

import polars as pl

from music_feedback.programs.model import Program
from music_feedback.scoring.cache.fingerprint import COLUMN as FINGERPRINT, feature_fingerprint
from music_feedback.scoring.cache.port import KEY, ScoreCache, versions_key
from music_feedback.scoring.model import TrainedModel, model_columns
from music_feedback.scoring.scorer import Scorer

ROLES = ("propensity", "affinity")


def model_inputs(models: dict[str, TrainedModel]) -> list[str]:
    """Every column either model reads: what a cached score depends on besides the versions."""
    return sorted({c for role in ROLES for c in model_columns(models[role].features)})


def score_with_cache(program: Program, scorer: Scorer, cache: ScoreCache, frame: pl.DataFrame,
                     models: dict[str, TrainedModel], now: datetime) -> tuple[pl.DataFrame, dict]:
    """`frame` with propensity_score and affinity_score; the cache is written only after every miss scored.

    A hit needs the same pair, model versions and feature values (by fingerprint), so a re-run of an older
    day scores with that day's features and champions whatever later days have cached."""
    versions = versions_key(models["propensity"].version, models["affinity"].version)
    keyed = frame.with_columns(feature_fingerprint(frame, model_inputs(models)))
    hits = cache.lookup(program.program_id, versions, keyed.select(KEY), now)
    # Nothing cached (a first run, new champions): no join, and no copy of the chunk for each.
    misses = keyed.join(hits.select(KEY), on=list(KEY), how="anti") if hits.height else keyed
    scored = {role: scorer.predict(models[role], misses, program.scoring.batch_size,
                                   endpoint=program.model(role).endpoint_name) for role in ROLES}
    scores = [pl.Series("propensity_score", scored["propensity"], dtype=pl.Float64),
              pl.Series("affinity_score", scored["affinity"], dtype=pl.Float64)]
    fresh = misses.select(KEY).with_columns(scores)
    out = (keyed.join(pl.concat([hits, fresh]), on=list(KEY), how="left") if hits.height
           else keyed.with_columns(scores)).drop(FINGERPRINT)
    cache.store(program.program_id, versions, fresh, now)
    n = max(frame.height, 1)
    return out, {"score_cache_hits": hits.height, "scored_now": fresh.height,
                 "score_cache_hit_rate": round(hits.height / n, 4)}
