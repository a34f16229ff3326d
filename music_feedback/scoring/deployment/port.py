"""The model deployer port: put a registered version where the scorer will find it, before the registry names
it champion. A deployment either completes (the endpoint serves the version) or fails and changes nothing the
batch reads: the old version keeps serving and stays champion (the retrain then does not promote)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from dagster import ConfigurableResource

from music_feedback.programs.model import ScoringModel
from music_feedback.scoring.registry.port import ModelRegistry

DEPLOYED, FAILED, NOT_NEEDED = "deployed", "failed", "not needed"


@dataclass
class Deployment:
    """What one deployment did, as it goes into the retrain asset's metadata."""
    model_id: str
    version: str
    status: str  # DEPLOYED | FAILED | NOT_NEEDED
    detail: str  # what happened, or why it failed
    endpoint: str | None = None
    action: str | None = None  # "created" | "updated" | "already serving" (SageMaker)
    remedy: str | None = None  # what to do after a failure
    resources: dict = field(default_factory=dict)  # the model, endpoint configuration, model data URL made
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return self.status == FAILED

    def as_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v not in (None, {}, "")}


class ModelDeployer(ConfigurableResource):
    def deploy(self, spec: ScoringModel, version: str, registry: ModelRegistry) -> Deployment:
        """Serve `version` of `spec` from where the scorer reads it; never raises for a deployment that
        fails (the returned Deployment says why), only for a programming error."""
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError
