"""Where the day's metrics go: a local table on the embedded default, CloudWatch PutMetricData on AWS.

CloudWatch keeps every data point and cannot delete one, so a day's figures are published as a series of
their own and read as its newest point: each figure carries the dimensions `Program` and `Day=YYYY-MM-DD`
(plus its own), is stamped when it is published (queryable at once, and inside an alarm's latest period),
and a re-run of the day publishes the day's figures again, later. Reading a day's figure is reading the
newest minute of its series (GetMetricData, period 60 s, ScanBy TimestampDescending, the first value;
Maximum, Minimum and Average agree, since one publish is one point a minute): the re-run's figure, never
a sum of runs. Two publishes of one day never share a minute from one process: the second waits for
the next minute (docs/aws.md, "Metrics in CloudWatch").
"""
from __future__ import annotations

import abc
import json
import sqlite3
import threading
import time
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Optional

from dagster import ConfigurableResource
from pydantic import Field, PrivateAttr

CLOUDWATCH_BATCH = 1000  # PutMetricData's limit of metrics per request


@dataclass(frozen=True)
class Metric:
    name: str
    value: float
    unit: str = "Count"  # CloudWatch units: Count, Percent, Seconds, Milliseconds, None
    dimensions: dict[str, str] = field(default_factory=dict)


class MetricsSinkError(RuntimeError):
    """The sink did not take the metrics; the message names it. Re-running the day sends them again."""


class MetricsSink(ConfigurableResource):
    @abc.abstractmethod
    def publish(self, program_id: str, day: str, metrics: list[Metric]) -> int:
        """Record the day's metrics (replacing the day's earlier ones where the sink can); returns how many."""

    def describe(self) -> str:
        return type(self).__name__


class SQLiteMetricsSink(MetricsSink):
    path: str = Field(description='SQLite file of the metrics table (MUSIC_FEEDBACK_HOME/metrics.sqlite).')

    def publish(self, program_id: str, day: str, metrics: list[Metric]) -> int:
        try:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            with closing(sqlite3.connect(self.path, isolation_level=None, timeout=30)) as conn:
                conn.execute("CREATE TABLE IF NOT EXISTS daily_metrics (program_id TEXT NOT NULL, day TEXT NOT NULL, "
                             "name TEXT NOT NULL, dimensions TEXT NOT NULL, value REAL, unit TEXT, "
                             "PRIMARY KEY (program_id, day, name, dimensions))")
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("DELETE FROM daily_metrics WHERE program_id = ? AND day = ?", (program_id, day))
                conn.executemany("INSERT INTO daily_metrics VALUES (?, ?, ?, ?, ?, ?)", [
                    (program_id, day, m.name, json.dumps(m.dimensions, sort_keys=True), m.value, m.unit)
                    for m in metrics])
                conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise MetricsSinkError(f"the metrics table {self.path} did not take the day's metrics: {exc}") from None
        return len(metrics)

    def read(self, program_id: str, day: str) -> list[dict]:
        with closing(sqlite3.connect(self.path)) as conn:
            rows = conn.execute("SELECT name, dimensions, value, unit FROM daily_metrics WHERE program_id = ? AND "
                                "day = ? ORDER BY name, dimensions", (program_id, day)).fetchall()
        return [{"name": n, "dimensions": json.loads(d), "value": v, "unit": u} for n, d, v, u in rows]

    def describe(self) -> str:
        return f"metrics table {self.path}"


class CloudWatchSink(MetricsSink):
    namespace: str = Field(default="MusicFeedback", description=(
        'CloudWatch namespace of the metrics (MUSIC_FEEDBACK_METRICS_NAMESPACE).'))
    region_name: str = Field(default="us-east-1", description=(
        'CloudWatch region (AWS_REGION, else AWS_DEFAULT_REGION).'))
    endpoint_url: Optional[str] = Field(default=None, description=(
        "CloudWatch endpoint; None: boto3's own (AWS_ENDPOINT_URL_CLOUDWATCH, else the region's)."))
    _client = PrivateAttr(default=None)
    _clock: Callable[[], float] = PrivateAttr(default=time.time)  # epoch seconds; the tests pass their own
    _sleep: Callable[[float], None] = PrivateAttr(default=time.sleep)
    _last_minute: dict = PrivateAttr(default_factory=dict)  # (program, day) -> the minute it was last published in
    _lock = PrivateAttr(default_factory=threading.Lock)

    def client(self):
        if self._client is None:
            # lazy: boto3 ~0.26 s; `why` and the service load this module for the SQLite sink
            import boto3
            # lazy: botocore, with boto3 above
            from botocore.config import Config
            self._client = boto3.session.Session().client(
                "cloudwatch", region_name=self.region_name, endpoint_url=self.endpoint_url,
                config=Config(retries={"mode": "standard", "total_max_attempts": 5}))
        return self._client

    def publish(self, program_id: str, day: str, metrics: list[Metric]) -> int:
        # lazy: botocore, with boto3 above
        from botocore.exceptions import BotoCoreError, ClientError
        stamp = datetime.fromtimestamp(self._publish_time(program_id, day), timezone.utc)
        data = [{"MetricName": m.name, "Value": float(m.value), "Unit": m.unit, "Timestamp": stamp,
                 "Dimensions": [{"Name": "Program", "Value": program_id}, {"Name": "Day", "Value": day}] +
                               [{"Name": k, "Value": str(v)} for k, v in sorted(m.dimensions.items())]}
                for m in metrics]
        try:
            for i in range(0, len(data), CLOUDWATCH_BATCH):
                self.client().put_metric_data(Namespace=self.namespace, MetricData=data[i:i + CLOUDWATCH_BATCH])
        except (ClientError, BotoCoreError) as exc:
            raise MetricsSinkError(f"CloudWatch ({self.endpoint_url or self.region_name}, namespace "
                                   f"{self.namespace}) did not take the metrics: {exc}") from None
        return len(data)

    def _publish_time(self, program_id: str, day: str) -> float:
        """Now, in a minute of its own for this day: a second publish of a day in the minute of the first
        waits for the next, so each publish is its own point at CloudWatch's 60-second resolution."""
        with self._lock:
            now = self._clock()
            last = self._last_minute.get((program_id, day))
            if last is not None and int(now // 60) <= last:
                self._sleep((last + 1) * 60 - now)
                now = max(self._clock(), (last + 1) * 60.0)
            self._last_minute[(program_id, day)] = int(now // 60)
            return now

    def describe(self) -> str:
        return f"CloudWatch namespace {self.namespace}"
