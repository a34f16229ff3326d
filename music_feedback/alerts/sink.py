"""The alert-sink port and its embedded adapter: one JSON line per alert in a local file."""
from __future__ import annotations

import abc
import json
from pathlib import Path

from dagster import ConfigurableResource
from pydantic import Field


class AlertSink(ConfigurableResource):
    @abc.abstractmethod
    def publish(self, alert: dict) -> str:
        """Deliver one alert (a JSON-serialisable dict with at least `job`, `run_id`, `step`, `error`);
        returns where it went (a path, a message id)."""

    @abc.abstractmethod
    def describe(self) -> str:
        """Where alerts go, for logs and the UI."""


class LocalFileAlertSink(AlertSink):
    path: str = Field(description=(
        'JSON-lines file the alerts are appended to (MUSIC_FEEDBACK_HOME/alerts.jsonl).'))

    def publish(self, alert: dict) -> str:
        path = Path(self.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as f:  # one write of one line: concurrent sensors' lines do not interleave
            f.write(json.dumps(alert, sort_keys=True) + "\n")
        return str(path)

    def describe(self) -> str:
        return f"file {self.path}"

    def read(self) -> list[dict]:
        path = Path(self.path)
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
