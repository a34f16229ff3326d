"""A trained model on disk, laid out as SageMaker's `/opt/ml/model`: model.joblib plus model.json."""
from __future__ import annotations

import json
from pathlib import Path

import joblib

from music_feedback.scoring.model import TrainedModel

ESTIMATOR_FILE = "model.joblib"
MANIFEST_FILE = "model.json"


class ModelArtifactError(RuntimeError):
    """A model directory that cannot be loaded; the message names the model and the file."""


def save_model(model: TrainedModel, directory: Path) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, directory / ESTIMATOR_FILE)
    manifest = {"model_id": model.model_id, "version": model.version, "role": model.role,
                "features": model.features, "metrics": model.metrics, "training_rows": model.training_rows}
    (directory / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2))
    return directory


def load_model(directory: Path, expected_model_id: str | None = None) -> TrainedModel:
    """Load and cross-check the manifest, so a swapped or truncated artifact is refused by name."""
    directory = Path(directory)
    name = expected_model_id or directory.name
    manifest_path, blob = directory / MANIFEST_FILE, directory / ESTIMATOR_FILE
    for path in (manifest_path, blob):
        if not path.is_file():
            raise ModelArtifactError(f"model {name}: artifact {path.name} is missing from {directory}; "
                                     "retrain the model or point the model directory at a complete one")
    try:
        manifest = json.loads(manifest_path.read_text())
        model = joblib.load(blob)
    except Exception as exc:  # joblib/pickle raise many types on a corrupt file
        raise ModelArtifactError(f"model {name}: artifact in {directory} is corrupt ({type(exc).__name__}: "
                                 f"{exc}); retrain the model") from None  # named above
    if not isinstance(model, TrainedModel) or model.version != manifest.get("version"):
        raise ModelArtifactError(f"model {name}: {ESTIMATOR_FILE} does not match {MANIFEST_FILE} in {directory} "
                                 f"(manifest says {manifest.get('version')!r}); retrain the model")
    if expected_model_id and model.model_id != expected_model_id:
        raise ModelArtifactError(f"model {expected_model_id}: {directory} holds {model.model_id} instead")
    return model
