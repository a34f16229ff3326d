"""Which scorer runs: one setting, MUSIC_FEEDBACK_SCORER = inprocess | sagemaker.

The default follows the adapter set (in-process on local, SageMaker on aws). For SageMaker,
MUSIC_FEEDBACK_SAGEMAKER_URL points boto3 at another runtime URL (the local front, say)."""
from __future__ import annotations

import os

from music_feedback.scoring.scorer import InProcessScorer, Scorer

SCORER_VAR = "MUSIC_FEEDBACK_SCORER"
SAGEMAKER_URL_VAR = "MUSIC_FEEDBACK_SAGEMAKER_URL"
SCORERS = ("inprocess", "sagemaker")


def scorer_kind(env: str) -> str:
    kind = os.environ.get(SCORER_VAR, "sagemaker" if env == "aws" else "inprocess").strip().lower()
    if kind not in SCORERS:
        raise ValueError(f"{SCORER_VAR}={kind!r} is not supported: set it to one of {list(SCORERS)}")
    return kind


def scorer_resource(env: str = "local") -> Scorer:
    if scorer_kind(env) == "inprocess":
        return InProcessScorer()
    # lazy: sagemaker_scorer imports boto3 (~0.26 s); `why` and the service load select with the in-process scorer
    from music_feedback.scoring.sagemaker_scorer import SageMakerScorer
    return SageMakerScorer(region_name=os.environ.get("AWS_REGION", os.environ.get("AWS_DEFAULT_REGION", "us-east-1")),
                           endpoint_url=os.environ.get(SAGEMAKER_URL_VAR) or None)
