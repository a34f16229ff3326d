"""The model registry port: storage is a key -> bytes map (a folder, or an S3 prefix); the rest is shared.

Layout under the root, per model id:
  <model_id>/versions/<version>/model.joblib, model.json   (SageMaker's /opt/ml/model layout)
  <model_id>/versions/<version>/entry.json                  (metrics, training window, lineage)
  <model_id>/versions/<version>/model.tar.gz                (the two model files, as SageMaker's model data;
                                                             written when a deployer asks for it)
  <model_id>/champions.json                                 (promotions, each effective from a day)
A day's batch scores with the champion whose promotion is effective on or before that day; a model is
effective only from the end of its training window, so no day is scored by a model that saw its future.
"""
from __future__ import annotations

import gzip
import io
import json
import tarfile
import tempfile
from datetime import date
from pathlib import Path

from dagster import ConfigurableResource

from music_feedback.scoring.artifacts import ESTIMATOR_FILE, MANIFEST_FILE, ModelArtifactError, load_model, save_model
from music_feedback.scoring.model import TrainedModel


ARCHIVE_FILE = "model.tar.gz"


class NoChampionError(RuntimeError):
    pass


class ModelRegistry(ConfigurableResource):
    # storage: three primitives each adapter implements
    def put_bytes(self, key: str, data: bytes) -> None:
        raise NotImplementedError

    def get_bytes(self, key: str) -> bytes | None:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def url(self, key: str) -> str:
        """Where the object under `key` lives, as a URL another system reads (s3://..., file://...)."""
        raise NotImplementedError

    # shared logic
    def _json(self, key: str, default):
        raw = self.get_bytes(key)
        return default if raw is None else json.loads(raw)

    def register(self, model: TrainedModel, window: tuple[date, date], lineage: dict, evaluation: dict) -> dict:
        """Store a version (idempotent: the same data gives the same version)."""
        base = f"{model.model_id}/versions/{model.version}"
        with tempfile.TemporaryDirectory() as tmp:
            d = save_model(model, Path(tmp))
            for name in (ESTIMATOR_FILE, MANIFEST_FILE):
                self.put_bytes(f"{base}/{name}", (d / name).read_bytes())
        entry = {"model_id": model.model_id, "version": model.version, "role": model.role,
                 "features": model.features, "training_rows": model.training_rows, "metrics": model.metrics,
                 "training_window": {"start": window[0].isoformat(), "end": window[1].isoformat()},
                 "lineage": lineage, "evaluation": evaluation}
        self.put_bytes(f"{base}/entry.json", json.dumps(entry, indent=2, default=str).encode())
        return entry

    def entry(self, model_id: str, version: str) -> dict | None:
        return self._json(f"{model_id}/versions/{version}/entry.json", None)

    def champions(self, model_id: str) -> list[dict]:
        return self._json(f"{model_id}/champions.json", [])

    def promote(self, model_id: str, version: str, effective_from: date, reason: str) -> None:
        entry = self.entry(model_id, version)
        if entry is None:
            raise ValueError(f"model {model_id}: version {version} is not registered in {self.describe()}")
        if date.fromisoformat(entry["training_window"]["end"]) > effective_from:
            raise ValueError(f"model {model_id}: {version} was trained on outcomes up to "
                             f"{entry['training_window']['end']}, so it cannot be champion from {effective_from}")
        history = [c for c in self.champions(model_id) if c["effective_from"] != effective_from.isoformat()]
        history.append({"version": version, "effective_from": effective_from.isoformat(), "reason": reason})
        history.sort(key=lambda c: c["effective_from"])
        self.put_bytes(f"{model_id}/champions.json", json.dumps(history, indent=2).encode())

    def champion_version(self, model_id: str, day: date) -> str | None:
        current = [c for c in self.champions(model_id) if date.fromisoformat(c["effective_from"]) <= day]
        return current[-1]["version"] if current else None

    def load(self, model_id: str, version: str) -> TrainedModel:
        base = f"{model_id}/versions/{version}"
        with tempfile.TemporaryDirectory() as tmp:
            for name in (ESTIMATOR_FILE, MANIFEST_FILE):
                data = self.get_bytes(f"{base}/{name}")
                if data is not None:
                    Path(tmp, name).write_bytes(data)
            try:
                return load_model(Path(tmp), model_id)
            except ModelArtifactError as exc:
                raise ModelArtifactError(f"{exc} (registry {self.describe()}, version {version})") from None

    def champion_on(self, model_id: str, day: date) -> TrainedModel:
        version = self.champion_version(model_id, day)
        if version is None:
            raise NoChampionError(f"model {model_id}: no champion in {self.describe()} for {day}; run the weekly "
                                  f"retrain for a week ending on or before {day} (`music-feedback run --retrain`)")
        return self.load(model_id, version)

    def artifact_url(self, model_id: str, version: str) -> str:
        """The version as SageMaker model data: `model.tar.gz` beside it (the two model files at the archive's
        root, which SageMaker extracts into /opt/ml/model), written now (same bytes every time), and its URL."""
        base = f"{model_id}/versions/{version}"
        buffer = io.BytesIO()
        with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as gz, \
                tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name in (ESTIMATOR_FILE, MANIFEST_FILE):
                data = self.get_bytes(f"{base}/{name}")
                if data is None:
                    raise ModelArtifactError(f"model {model_id}: artifact {name} of version {version} is missing "
                                             f"in {self.describe()}")
                info = tarfile.TarInfo(name)
                info.size, info.mtime, info.mode = len(data), 0, 0o644
                tar.addfile(info, io.BytesIO(data))
        self.put_bytes(f"{base}/{ARCHIVE_FILE}", buffer.getvalue())
        return self.url(f"{base}/{ARCHIVE_FILE}")

    def export(self, model_id: str, version: str, directory: Path) -> Path:
        """Write a version as a SageMaker model directory (to tar up as model.tar.gz, or to serve)."""
        return save_model(self.load(model_id, version), Path(directory))
