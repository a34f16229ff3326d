"""Hold-out metrics (AUC, log loss, calibration) for a challenger, the champion and a popularity baseline,
and the promotion decision."""
from __future__ import annotations

import numpy as np
import polars as pl
from sklearn.metrics import log_loss, roc_auc_score

BINS = 10
PRIOR = 5.0  # pseudo-rows at the global rate, so a track seen once is not 0% or 100%


def calibration_error(y: np.ndarray, p: np.ndarray) -> float:
    """Expected calibration error over 10 equal-width bins: mean |observed rate - predicted|, row-weighted."""
    idx = np.minimum((p * BINS).astype(int), BINS - 1)
    err = 0.0
    for b in range(BINS):
        m = idx == b
        if m.any():
            err += m.sum() * abs(y[m].mean() - p[m].mean())
    return err / max(len(y), 1)


def metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return {"auc": round(float(roc_auc_score(y, p)), 4), "log_loss": round(float(log_loss(y, p, labels=[0, 1])), 4),
            "calibration_error": round(float(calibration_error(y, p)), 4)}


def popularity_baseline(train: pl.DataFrame, test: pl.DataFrame) -> np.ndarray:
    """Each track's smoothed positive rate on the training rows: what 'popular tracks first' would predict."""
    rate = float(train["label"].cast(pl.Float64).mean())
    per_track = train.group_by("track_id").agg(pl.col("label").cast(pl.Float64).sum().alias("pos"),
                                               pl.len().alias("n"))
    return (test.select("track_id").join(per_track, on="track_id", how="left")
            .select(((pl.col("pos").fill_null(0) + PRIOR * rate) / (pl.col("n").fill_null(0) + PRIOR)).alias("p"))
            ["p"].to_numpy())


def decide(challenger: dict, champion: dict | None, baseline: dict, margin: float) -> tuple[bool, str]:
    """Promote only a challenger that beats the baseline and the champion's AUC by `margin`."""
    if challenger["auc"] <= baseline["auc"]:
        return False, (f"challenger AUC {challenger['auc']} does not beat the popularity baseline's "
                       f"{baseline['auc']}; kept the champion")
    if champion is None:
        return True, f"first champion: AUC {challenger['auc']} beats the popularity baseline's {baseline['auc']}"
    gain = round(challenger["auc"] - champion["auc"], 4)
    if gain < margin:
        return False, (f"challenger AUC {challenger['auc']} vs champion {champion['auc']} (+{gain}) is below the "
                       f"promotion margin {margin}; kept the champion")
    return True, f"challenger AUC {challenger['auc']} beats the champion's {champion['auc']} by {gain} >= {margin}"
