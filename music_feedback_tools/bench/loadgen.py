"""A steady request rate from Debian's `hey` (-q: requests per second per worker), its per-request
latencies read from its CSV output. wrk cannot hold a constant rate and wrk2 is not packaged.

One hey's workers tick in step, so c workers send bursts of c requests (4 at rate/4 measured twice the
p99 of 2 at rate/2). Several one-connection hey processes started a tick apart keep arrivals evenly
spaced, and their connections spread over the service's workers the way many clients' do: two
connections often landed on one worker and left the other idle."""
from __future__ import annotations

import csv
import io
import shutil
import subprocess
import time

CONNECTIONS = 4


def hey_missing() -> str | None:
    return None if shutil.which("hey") else "hey is not installed: `make bench` installs it (apt-get install hey)"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(q * len(ordered))) - 1))]


def _hey(url: str, headers: dict, rate: float, seconds: int) -> subprocess.Popen:
    cmd = ["hey", "-z", f"{seconds}s", "-c", "1", "-q", f"{rate:g}", "-o", "csv"]
    for k, v in headers.items():
        cmd += ["-H", f"{k}: {v}"]
    return subprocess.Popen(cmd + [url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def steady(url: str, headers: dict, rate: int, seconds: int, connections: int = CONNECTIONS) -> dict:
    """`rate` requests/s for `seconds` over `connections` connections; latencies in ms. One `hey` per
    connection, each started 1/rate after the previous: arrivals evenly spaced, not in bursts."""
    procs = []
    for _ in range(connections):
        procs.append(_hey(url, headers, rate / connections, seconds))
        time.sleep(1 / rate)
    rows = []
    for proc in procs:
        out, err = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"hey failed on {url}: {err.strip()[-300:]}")
        rows += list(csv.DictReader(io.StringIO(out)))
    lat = [float(r["response-time"]) * 1000 for r in rows]
    bad = sum(1 for r in rows if r["status-code"] != "200")
    if not lat:
        raise RuntimeError(f"hey sent no request to {url}")
    return {"requests": len(lat), "rate": round(len(lat) / seconds, 1), "non_200": bad,
            "p50_ms": round(percentile(lat, 0.50), 2), "p99_ms": round(percentile(lat, 0.99), 2),
            "max_ms": round(max(lat), 2), "latencies": lat}
