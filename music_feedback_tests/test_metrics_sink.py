"""The metrics sinks: a local table, and CloudWatch PutMetricData on moto's server (1,000 a request)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import boto3
import pytest

from music_feedback.metrics.sink import CloudWatchSink, Metric, MetricsSinkError, SQLiteMetricsSink

pytestmark = pytest.mark.unit


def metrics(n: int) -> list[Metric]:
    return [Metric("Delivered", float(i), "Count", {"Channel": "email", "Marketplace": f"M{i}"}) for i in range(n)]


def test_local_table_replaces_the_day(tmp_path):
    sink = SQLiteMetricsSink(path=str(tmp_path / "metrics.sqlite"))
    assert sink.publish("p", "2026-11-23", metrics(3)) == 3
    assert sink.publish("p", "2026-11-23", metrics(2)) == 2  # a re-run: the day's rows, once
    rows = sink.read("p", "2026-11-23")
    assert len(rows) == 2 and rows[0]["dimensions"] == {"Channel": "email", "Marketplace": "M0"}


def test_local_table_down_is_named(tmp_path):
    (tmp_path / "metrics.sqlite").mkdir()  # a folder where the database file should be
    with pytest.raises(MetricsSinkError, match="metrics table .* did not take"):
        SQLiteMetricsSink(path=str(tmp_path / "metrics.sqlite")).publish("p", "2026-11-23", metrics(1))


@pytest.mark.integration
def test_cloudwatch_in_requests_of_1000(moto_endpoint):
    sink = CloudWatchSink(namespace="MusicFeedbackTest", endpoint_url=moto_endpoint)
    day = (datetime.now(timezone.utc) - timedelta(days=1)).date().isoformat()
    assert sink.publish("music-feedback", day, metrics(1_250)) == 1_250
    cw = boto3.client("cloudwatch", region_name="us-east-1", endpoint_url=moto_endpoint)
    listed = [m for page in cw.get_paginator("list_metrics").paginate(Namespace="MusicFeedbackTest")
              for m in page["Metrics"]]
    assert len(listed) == 1_250
    assert {"Name": "Program", "Value": "music-feedback"} in listed[0]["Dimensions"]


def test_cloudwatch_down_is_named():
    sink = CloudWatchSink(endpoint_url="http://127.0.0.1:9")
    with pytest.raises(MetricsSinkError, match="CloudWatch .* did not take the metrics"):
        sink.publish("p", "2026-11-23", metrics(1))
