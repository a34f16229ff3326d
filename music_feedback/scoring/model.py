"""A trained model: its encoder, its sklearn estimator, its version and its held-out metrics."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from music_feedback.scoring.features import CATEGORICAL


def model_columns(features: list[str]) -> list[str]:
    """Feature names as frame columns (release_date is used as days since release)."""
    return ["days_since_release" if f == "release_date" else f for f in features]


@dataclass
class FeatureEncoder:
    """Numeric columns standardised, categorical ones one-hot; learned on the training rows."""
    columns: list[str]
    categories: dict[str, list[str]] = field(default_factory=dict)
    means: dict[str, float] = field(default_factory=dict)
    stds: dict[str, float] = field(default_factory=dict)

    def fit(self, frame: pl.DataFrame) -> "FeatureEncoder":
        for col in self.columns:
            if col in CATEGORICAL:
                self.categories[col] = sorted(frame[col].drop_nulls().unique().to_list())
            else:
                self.means[col] = float(frame[col].mean() or 0.0)
                self.stds[col] = float(frame[col].std() or 1.0) or 1.0
        return self

    def transform(self, frame: pl.DataFrame) -> np.ndarray:
        exprs = []
        for col in self.columns:
            if col in CATEGORICAL:
                exprs += [(pl.col(col) == cat).fill_null(False).cast(pl.Float64).alias(f"{col}={cat}")
                          for cat in self.categories[col]]
            else:
                # Multiply by the reciprocal: polars divides short frames differently, so a row's
                # encoding (and a tree's split) would depend on the size of its scoring batch.
                exprs.append(((pl.col(col).cast(pl.Float64).fill_null(self.means[col]) - self.means[col])
                              * (1.0 / self.stds[col])).alias(col))
        return frame.select(exprs).to_numpy()


@dataclass
class TrainedModel:
    model_id: str
    role: str
    features: list[str]
    encoder: FeatureEncoder
    estimator: object
    metrics: dict[str, float]
    training_rows: int
    data_fingerprint: str

    @property
    def version(self) -> str:
        digest = hashlib.sha256(f"{self.model_id}|{self.features}|{self.data_fingerprint}".encode()).hexdigest()
        return f"{self.model_id}@{digest[:10]}"

    def predict(self, frame: pl.DataFrame) -> np.ndarray:
        """Probability of the positive outcome for each row of `frame`."""
        return self.estimator.predict_proba(self.encoder.transform(frame))[:, 1]
