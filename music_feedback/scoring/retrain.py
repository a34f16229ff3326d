"""One weekly retrain of one model: train a challenger, evaluate it on the time-based hold-out against
the champion and a popularity baseline, register it, and promote it only if it wins by the margin and
its deployment (the deployer port: a SageMaker endpoint on AWS, nothing in-process) completes: a failed
deployment leaves the old champion both serving and champion in the registry."""
from __future__ import annotations

from datetime import date

import polars as pl

from music_feedback.programs.model import ScoringModel
from music_feedback.scoring.deployment.embedded import InProcessDeployer
from music_feedback.scoring.deployment.port import ModelDeployer
from music_feedback.scoring.evaluation import decide, metrics, popularity_baseline
from music_feedback.scoring.registry.port import ModelRegistry
from music_feedback.scoring.training import labelled_rows, split_holdout, train_model


def retrain(spec: ScoringModel, rows: pl.DataFrame, registry: ModelRegistry, window_end: date, margin: float,
            lineage: dict, deployer: ModelDeployer | None = None) -> dict:
    """The decision, as it goes into the asset's metadata. The challenger becomes effective from
    `window_end`, the end of the outcomes it saw, once `deployer` (default: in-process, nothing to deploy)
    has it serving; `deployment` says what the deployer did (None when nothing was promoted)."""
    frame = labelled_rows(spec, rows)
    challenger = train_model(spec, rows)
    train, test = split_holdout(frame)
    y = test["label"].cast(pl.Int8).to_numpy()
    evaluation = {"holdout_rows": test.height, "holdout_from": str(test["requested_at"].min()),
                  "challenger": metrics(y, challenger.predict(test)),
                  "popularity_baseline": metrics(y, popularity_baseline(train, test)), "champion": None}
    champion_version = registry.champion_version(spec.model_id, window_end)
    if champion_version is not None:
        evaluation["champion"] = metrics(y, registry.load(spec.model_id, champion_version).predict(test))
    window = (frame["requested_at"].min().date(), window_end)
    registry.register(challenger, window, lineage, evaluation)
    if champion_version == challenger.version:
        promoted, reason = False, "the challenger is the champion (trained on the same rows); kept it"
    else:
        promoted, reason = decide(evaluation["challenger"], evaluation["champion"],
                                  evaluation["popularity_baseline"], margin)
    deployment = None
    if promoted:
        deployment = (deployer or InProcessDeployer()).deploy(spec, challenger.version, registry)
        if deployment.failed:
            promoted = False
            reason = (f"{reason}; NOT promoted: deploying it to endpoint {deployment.endpoint} failed "
                      f"({deployment.detail}), so {champion_version or 'no version'} stays champion")
    if promoted:
        registry.promote(spec.model_id, challenger.version, window_end, reason)
    return {"model_id": spec.model_id, "challenger_version": challenger.version,
            "champion_before": champion_version, "promoted": promoted, "reason": reason,
            "deployment": deployment.as_dict() if deployment else None,
            "champion_after": challenger.version if promoted else champion_version,
            "training_window": {"start": window[0].isoformat(), "end": window_end.isoformat()},
            "training_rows": challenger.training_rows, "evaluation": evaluation}
