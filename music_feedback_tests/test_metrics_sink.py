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
    assert {"Name": "Day", "Value": day} in listed[0]["Dimensions"]


@pytest.mark.integration
def test_cloudwatch_stamps_at_publish_and_a_rerun_is_what_reads_back(moto_endpoint):
    """Stamped when published (not at the day's end), the day a dimension; a re-run's figure, lower or
    higher, is the day's figure read back, not a sum of the runs."""
    namespace, day = "MusicFeedbackRerun", "2026-11-23"
    sink = CloudWatchSink(namespace=namespace, endpoint_url=moto_endpoint)
    now = datetime.now(timezone.utc).replace(second=0, microsecond=0).timestamp()
    first, rerun = now - 600 + 5, now - 300 + 5  # the first run 10 minutes ago, the re-run 5
    sink._clock = lambda: first
    sink.publish("music-feedback", day, [Metric("Delivered", 120.0), Metric("ErrorRate", 0.5, "Percent")])
    sink._clock = lambda: rerun
    sink.publish("music-feedback", day, [Metric("Delivered", 80.0), Metric("ErrorRate", 0.25, "Percent")])
    cw = boto3.client("cloudwatch", region_name="us-east-1", endpoint_url=moto_endpoint)
    dims = [{"Name": "Program", "Value": "music-feedback"}, {"Name": "Day", "Value": day}]
    start, end = datetime.fromtimestamp(now - 3600, timezone.utc), datetime.fromtimestamp(now + 60, timezone.utc)
    for stat in ("Maximum", "Minimum", "Average"):
        got = cw.get_metric_data(MetricDataQueries=[
            {"Id": f"m{i}", "MetricStat": {"Metric": {"Namespace": namespace, "MetricName": name, "Dimensions": dims},
                                           "Period": 60, "Stat": stat}}
            for i, name in enumerate(("Delivered", "ErrorRate"))],
            StartTime=start, EndTime=end, ScanBy="TimestampDescending")["MetricDataResults"]
        by_id = {r["Id"]: r for r in got}
        assert by_id["m0"]["Values"][0] == 80.0 and by_id["m1"]["Values"][0] == 0.25, stat  # the newest point
        assert by_id["m0"]["Timestamps"][0] == datetime.fromtimestamp(rerun - 5, timezone.utc)  # stamped at publish
        assert sorted(by_id["m0"]["Values"]) == [80.0, 120.0]  # two points, one a minute: never summed
    stats = cw.get_metric_statistics(Namespace=namespace, MetricName="Delivered", Dimensions=dims,
                                     StartTime=start, EndTime=end, Period=60, Statistics=["Maximum", "SampleCount"])
    newest = max(stats["Datapoints"], key=lambda p: p["Timestamp"])
    assert (newest["Maximum"], newest["SampleCount"]) == (80.0, 1.0)


def test_a_second_publish_of_a_day_waits_for_a_minute_of_its_own():
    sink = CloudWatchSink()
    clock, slept = [6000.0 + 10], []
    sink._clock = lambda: clock[0]
    sink._sleep = lambda s: (slept.append(s), clock.__setitem__(0, clock[0] + s))
    assert sink._publish_time("p", "2026-11-23") == 6010.0
    clock[0] = 6040.0  # a re-run within the same minute
    assert sink._publish_time("p", "2026-11-23") == 6060.0 and slept == [20.0]
    assert sink._publish_time("p", "2026-11-24") == 6060.0  # another day: no wait


def test_cloudwatch_down_is_named():
    sink = CloudWatchSink(endpoint_url="http://127.0.0.1:9")
    with pytest.raises(MetricsSinkError, match="CloudWatch .* did not take the metrics"):
        sink.publish("p", "2026-11-23", metrics(1))
