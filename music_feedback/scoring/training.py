"""Train the propensity (will they answer?) and affinity (will they like it?) models on outcome history."""
from __future__ import annotations

import hashlib

import numpy as np
import polars as pl
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import log_loss, roc_auc_score

from music_feedback.programs.model import ScoringModel
from music_feedback.scoring.model import FeatureEncoder, TrainedModel, model_columns

HOLDOUT_SHARE = 0.2
MIN_ROWS = 200


def _training_frame(outcomes: pl.DataFrame, role: str) -> tuple[pl.DataFrame, str]:
    frame = outcomes if "release_date" not in outcomes.columns else outcomes.with_columns(
        (pl.col("requested_at").cast(pl.Date) - pl.col("release_date")).dt.total_days()
        .cast(pl.Float64).alias("days_since_release"))  # logged rows carry days_since_release already
    if role == "propensity":
        return frame.with_columns(pl.col("responded").alias("label")), "responded"
    return frame.filter(pl.col("responded")).with_columns(pl.col("liked").alias("label")), "liked"


def labelled_rows(spec: ScoringModel, outcomes: pl.DataFrame) -> pl.DataFrame:
    """The model's rows with a `label`, oldest request first; too few is an error naming the model."""
    frame, label = _training_frame(outcomes, spec.role)
    frame = frame.filter(pl.col("label").is_not_null()).sort("requested_at", "listener_id", "track_id")
    if frame.height < MIN_ROWS or frame["label"].n_unique() < 2:
        raise ValueError(f"model {spec.model_id}: feedback_outcomes has {frame.height} usable rows for '{label}' "
                         f"of this program (need {MIN_ROWS}+ with both outcomes); the program needs its own "
                         "outcome history in the warehouse (a bigger generated warehouse, or real history)")
    return frame


def split_holdout(frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Older 80% to train on, newest 20% to evaluate on (a time-based hold-out)."""
    cut = int(frame.height * (1 - HOLDOUT_SHARE))
    return frame[:cut], frame[cut:]


def train_model(spec: ScoringModel, outcomes: pl.DataFrame, seed: int = 0) -> TrainedModel:
    """Fit on the older 80% of requests and report metrics on the newest 20% (a time-ordered hold-out)."""
    frame = labelled_rows(spec, outcomes)
    cols = model_columns(spec.features)
    train, test = split_holdout(frame)
    encoder = FeatureEncoder(cols).fit(train)
    estimator = HistGradientBoostingClassifier(max_iter=150, learning_rate=0.1, max_leaf_nodes=31,
                                               random_state=seed)
    estimator.fit(encoder.transform(train), train["label"].to_numpy())
    proba = estimator.predict_proba(encoder.transform(test))[:, 1]
    y = test["label"].to_numpy()
    metrics = {"holdout_auc": round(float(roc_auc_score(y, proba)), 4),
               "holdout_log_loss": round(float(log_loss(y, np.clip(proba, 1e-6, 1 - 1e-6))), 4),
               "base_rate": round(float(y.mean()), 4)}
    fingerprint = hashlib.sha256(frame.select(cols + ["label"]).hash_rows().to_numpy().tobytes()).hexdigest()
    return TrainedModel(spec.model_id, spec.role, list(spec.features), encoder, estimator, metrics,
                        frame.height, fingerprint)
