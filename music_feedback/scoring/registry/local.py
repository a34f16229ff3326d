"""Embedded adapter of the model registry: a folder in the lake."""
from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field

from music_feedback.scoring.registry.port import ModelRegistry


class LocalModelRegistry(ModelRegistry):
    root: str = Field(description='Folder of the model registry (MUSIC_FEEDBACK_HOME/lake/model_registry).')

    def _path(self, key: str) -> Path:
        return Path(self.root, *key.split("/"))

    def put_bytes(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)  # a reader never sees half a file

    def get_bytes(self, key: str) -> bytes | None:
        path = self._path(key)
        return path.read_bytes() if path.is_file() else None

    def describe(self) -> str:
        return f"folder {self.root}"

    def url(self, key: str) -> str:
        return self._path(key).resolve().as_uri()
