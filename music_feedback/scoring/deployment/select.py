"""Which deployer a set gets: SageMaker only where the batch scores through SageMaker endpoints (the AWS set
with the SageMaker scorer); everywhere else the in-process scorer reads the registry and nothing is deployed.
(The local set with MUSIC_FEEDBACK_SCORER=sagemaker points at a front that serves the registry's champions.)"""
from __future__ import annotations

from music_feedback.scoring.deployment.embedded import InProcessDeployer
from music_feedback.scoring.deployment.port import ModelDeployer
from music_feedback.scoring.select import scorer_kind


def deployer_resource(env: str = "local") -> ModelDeployer:
    if env == "aws" and scorer_kind(env) == "sagemaker":
        # lazy: the SageMaker deployer imports boto3 (~0.26 s); the local set never needs it
        from music_feedback.scoring.deployment.sagemaker import SageMakerDeployer
        return SageMakerDeployer.from_env()
    return InProcessDeployer()
