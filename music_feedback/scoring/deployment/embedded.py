"""Embedded adapter of the model deployer: nothing to deploy, by design. The in-process scorer loads the
champion of the day from the registry itself, so promoting a version in the registry is the deployment."""
from __future__ import annotations

from music_feedback.programs.model import ScoringModel
from music_feedback.scoring.deployment.port import NOT_NEEDED, Deployment, ModelDeployer
from music_feedback.scoring.registry.port import ModelRegistry


class InProcessDeployer(ModelDeployer):
    def deploy(self, spec: ScoringModel, version: str, registry: ModelRegistry) -> Deployment:
        return Deployment(spec.model_id, version, NOT_NEEDED,
                          f"the in-process scorer loads the champion from {registry.describe()}; "
                          "promoting it there is the whole deployment")

    def describe(self) -> str:
        return "in-process (nothing to deploy: the scorer loads the registry's champion)"
