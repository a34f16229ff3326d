"""Score the day's candidates with both champions, skipping pairs the score cache already holds."""
from __future__ import annotations

from datetime import datetime

import polars as pl

from music_feedback.programs.model import Program
from music_feedback.scoring.cache.port import PAIR, ScoreCache, versions_key
from music_feedback.scoring.model import TrainedModel
from music_feedback.scoring.scorer import Scorer


def score_with_cache(program: Program, scorer: Scorer, cache: ScoreCache, frame: pl.DataFrame,
                     models: dict[str, TrainedModel], now: datetime) -> tuple[pl.DataFrame, dict]:
    """`frame` with propensity_score and affinity_score; the cache is written only after every miss scored."""
    versions = versions_key(models["propensity"].version, models["affinity"].version)
    hits = cache.lookup(program.program_id, versions, frame.select(PAIR), now)
    misses = frame.join(hits.select(PAIR), on=list(PAIR), how="anti")
    scored = {role: scorer.predict(models[role], misses, program.scoring.batch_size,
                                   endpoint=program.model(role).endpoint_name) for role in ("propensity", "affinity")}
    fresh = misses.select(PAIR).with_columns(
        pl.Series("propensity_score", scored["propensity"], dtype=pl.Float64),
        pl.Series("affinity_score", scored["affinity"], dtype=pl.Float64))
    out = frame.join(pl.concat([hits, fresh]), on=list(PAIR), how="left")
    cache.store(program.program_id, versions, fresh, now)
    n = max(frame.height, 1)
    return out, {"score_cache_hits": hits.height, "scored_now": fresh.height,
                 "score_cache_hit_rate": round(hits.height / n, 4)}


