"""A steady request rate from Debian's `hey` (-q: requests per second per worker), its per-request
latencies read from its CSV output. wrk cannot hold a constant rate and wrk2 is not packaged.

hey's workers tick in step, so c workers send bursts of c requests: 2 workers at rate/2 each keep
arrivals close to evenly spaced (4 at rate/4 measured twice the p99 for the same rate)."""
from __future__ import annotations

import csv
import io
import shutil
import subprocess


def hey_missing() -> str | None:
    return None if shutil.which("hey") else "hey is not installed: `make bench` installs it (apt-get install hey)"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(q * len(ordered))) - 1))]


def steady(url: str, headers: dict, rate: int, seconds: int, workers: int = 2) -> dict:
    """`rate` requests/s for `seconds` over `workers` connections; latencies in ms."""
    cmd = ["hey", "-z", f"{seconds}s", "-c", str(workers), "-q", f"{rate / workers:g}", "-o", "csv"]
    for k, v in headers.items():
        cmd += ["-H", f"{k}: {v}"]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, check=True).stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    lat = [float(r["response-time"]) * 1000 for r in rows]
    bad = sum(1 for r in rows if r["status-code"] != "200")
    if not lat:
        raise RuntimeError(f"hey sent no request to {url}")
    return {"requests": len(lat), "rate": round(len(lat) / seconds, 1), "non_200": bad,
            "p50_ms": round(percentile(lat, 0.50), 2), "p99_ms": round(percentile(lat, 0.99), 2),
            "max_ms": round(max(lat), 2), "latencies": lat}
