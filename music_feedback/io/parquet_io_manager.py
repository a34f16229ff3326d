"""The IO manager's embedded adapter: a local folder. Writes go to a temporary file renamed into place,
so a failed run never leaves half a partition."""
from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Iterable

from pydantic import Field

from music_feedback.io.port import ParquetIOManager


class LocalParquetIOManager(ParquetIOManager):
    base_dir: str = Field(description=(
        'Folder the assets are stored in as Parquet (MUSIC_FEEDBACK_HOME/assets).'))

    def _path(self, key: str) -> Path:
        return Path(self.base_dir, *key.split("/"))

    def _store(self, key: str, write) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Unique per write: two runs writing the same asset must never rename each other's file.
        tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex}.tmp")
        try:
            write(tmp)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    def _exists(self, key: str) -> bool:
        return self._path(key).exists()

    def _open(self, key: str) -> str:
        return str(self._path(key))

    def _delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def _list(self, prefix: str) -> Iterable[str]:
        folder = self._path(prefix.rstrip("/"))
        return [f"{prefix}{p.name}" for p in folder.iterdir() if p.is_file()] if folder.is_dir() else []

    def where(self, key: str) -> str:
        return str(self._path(key))
