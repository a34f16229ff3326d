"""The feedback-under-writes section of `make bench`: the delivery section's feedback load (`wrk` POSTing
`/v1/feedback`, one service worker) alone, then while another process writes the feedback store the way
the email job does, then while a writer holds its lock for seconds at a time.

The writer (`python -m music_feedback_tools.bench.feedback_writes writer ...`) claims and settles 200-row chunks
of a program of its own in the same `feedback.sqlite` with the email job's statements, each claim and each
settle one `BEGIN IMMEDIATE` transaction, a drawn pause (100-400 ms) between them:

- `email`: each transaction holds the lock as long as its work takes (a chunk's claim or settle: about
  10 ms, up to ~180 ms when a checkpoint lands in it). `feedback_p99_under_writes_ms` (target <= 100) and
  `feedback_errors_under_writes` (target 0: wrk's socket errors, timeouts and every status >= 400, so a
  503 counts) come from this run.
- `long`: each transaction padded to a hold drawn log-uniform in 20-200 ms (median 63 ms), the lock held
  about a quarter of the time: `feedback_p99_under_long_writes_ms` and `feedback_errors_under_long_writes`.
  Every connection posting during a hold waits for its end, so the p99 follows the longest holds.
- `hold`: 1.5 s holds with 50 ms pauses while the feedback load waits and `hey` polls `/healthz` at a
  steady rate: `healthz_p99_under_lock_ms` (target <= 50: it never waits on the database).

`feedback_rps_without_writers` and `feedback_p99_without_writers_ms` (targets >= 500 and <= 50) are the
same load with no writer, through the same service. `writer_*` figures say what the writers held.
"""
from __future__ import annotations

import json
import math
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Iterator

from music_feedback import runner, settings
from music_feedback_tools.bench import loadgen
from music_feedback_tools.bench.delivery import CONNECTIONS, LUA, THREADS, WORKERS
from music_feedback.programs.model import Program
from music_feedback.warehouse.duckdb_warehouse import DuckDBWarehouse

SECONDS = 10  # each measured wrk run, after a 2 s warm-up
HEALTH_RATE, HEALTH_SECONDS = 50, 6
WRITER_PROGRAM, WRITER_DAY, CHUNK, CHUNKS = "bench-writer", "2000-01-01", 200, 50
# mode -> (hold ms low, high: log-uniform; None: as long as the work takes), (pause ms low, high: uniform)
PATTERNS = {
    "email": (None, (100, 400)),
    "long": ((20, 200), (100, 400)),
    "hold": ((1500, 1500), (50, 50)),
}
WRK_TIMEOUT_S = 15  # past the service's lock wait: a 503 is counted as a status, not as a timeout
_KEY = "program_id = ? AND batch_date = ? AND channel = 'email' AND listener_id = ? AND track_id = ?"


# --- the writer, in a process of its own ----------------------------------------------------------------
def _plan_chunks(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("DELETE FROM delivery_ledger WHERE program_id = ?", (WRITER_PROGRAM,))
    conn.executemany(
        "INSERT INTO delivery_ledger (program_id, batch_date, listener_id, track_id, channel, state, "
        "campaign, marketplace, genre, track_name, artist_id, score, send_at, send_before, updated_at) "
        "VALUES (?, ?, ?, 1, 'email', 'pending', 'bench', 'US', 'rock', 'bench', 1, 0.5, 0, 1e12, 0)",
        ((WRITER_PROGRAM, WRITER_DAY, lid) for lid in range(1, CHUNK * CHUNKS + 1)))
    conn.execute("COMMIT")


def _chunk_step(conn: sqlite3.Connection, step: int) -> None:
    """One transaction's work, the email job's statements (SQLiteFeedbackStore.claim and .settle): a
    chunk's claim (pending -> sending), or its settle (sending -> sent); the last settle of a round puts
    every chunk back to pending."""
    chunk, settle = (step // 2) % CHUNKS, step % 2
    keys = [(lid, 1) for lid in range(chunk * CHUNK + 1, (chunk + 1) * CHUNK + 1)]
    now = time.time()
    if not settle:
        conn.execute(
            "UPDATE delivery_ledger SET state = 'sending', attempts = attempts + 1, updated_at = ?, "
            "contacted_at = ? WHERE program_id = ? AND batch_date = ? AND channel = 'email' "
            f"AND state = 'pending' AND (listener_id, track_id) IN (VALUES {', '.join(['(?, ?)'] * len(keys))}) "
            "RETURNING listener_id, track_id",
            (now, now, WRITER_PROGRAM, WRITER_DAY, *(v for k in keys for v in k))).fetchall()
        return
    conn.executemany(
        "UPDATE delivery_ledger SET state = 'sent', reason = NULL, message_id = COALESCE(?, message_id), "
        f"updated_at = ?, contacted_at = ? WHERE {_KEY} AND state = 'sending'",
        ((f"<{lid}@bench>", now, now, WRITER_PROGRAM, WRITER_DAY, lid, tid) for lid, tid in keys))
    if chunk == CHUNKS - 1:
        conn.execute("UPDATE delivery_ledger SET state = 'pending', contacted_at = NULL WHERE program_id = ?",
                     (WRITER_PROGRAM,))


def write_loop(path: str, seconds: float, mode: str, seed: int = 7) -> dict:
    """Write `path` in `mode`'s pattern for `seconds`; prints "ready" once set up. -> the holds made."""
    hold_range, (pause_lo, pause_hi) = PATTERNS[mode]
    rng = random.Random(seed)
    holds: list[float] = []
    with closing(sqlite3.connect(path, isolation_level=None, timeout=60)) as conn:
        _plan_chunks(conn)
        print("ready", flush=True)
        started = time.perf_counter()
        step = 0
        while time.perf_counter() - started < seconds:
            hold = 0.0 if hold_range is None else math.exp(rng.uniform(*map(math.log, hold_range))) / 1000
            conn.execute("BEGIN IMMEDIATE")
            got = time.perf_counter()
            _chunk_step(conn, step)
            time.sleep(max(0.0, hold - (time.perf_counter() - got)))
            conn.execute("COMMIT")
            holds.append(time.perf_counter() - got)
            step += 1
            time.sleep(rng.uniform(pause_lo, pause_hi) / 1000)
        wall = time.perf_counter() - started
        conn.execute("DELETE FROM delivery_ledger WHERE program_id = ?", (WRITER_PROGRAM,))
    ms = sorted(h * 1000 for h in holds)
    return {"transactions": len(ms), "hold_ms_p50": round(loadgen.percentile(ms, 0.5), 1),
            "hold_ms_p99": round(loadgen.percentile(ms, 0.99), 1), "hold_ms_max": round(ms[-1], 1),
            "locked_share": round(sum(ms) / 1000 / wall, 3)}


@contextmanager
def writer(path: Path, seconds: float, mode: str) -> Iterator[dict]:
    """The writer process for the block's duration; yields a dict filled with its figures at the end."""
    proc = subprocess.Popen([sys.executable, "-m", "music_feedback_tools.bench.feedback_writes", "writer",
                             str(path), str(seconds), mode], stdout=subprocess.PIPE, text=True)
    figures: dict = {}
    try:
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the bench writer did not start (exit code {proc.poll()})")
        yield figures
        out, _ = proc.communicate(timeout=seconds + 60)
        figures.update(json.loads(out.strip().splitlines()[-1]))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# --- the load -------------------------------------------------------------------------------------------
def _tokens(program: Program, day: str, feedback_path: Path) -> str:
    from music_feedback.delivery.links import LinkSigner
    links, expires = LinkSigner.from_env(), int(time.time()) + 86_400
    with closing(sqlite3.connect(feedback_path)) as conn:
        rows = conn.execute("SELECT listener_id, track_id, channel FROM delivery_ledger WHERE program_id = ? "
                            "AND batch_date = ? AND state = 'sent' LIMIT 60000",
                            (program.program_id, day)).fetchall()
    if not rows:
        raise RuntimeError(f"no sent request of {day} in {feedback_path}: run the delivery section first")
    with tempfile.NamedTemporaryFile("w", suffix=".tokens", delete=False) as f:
        f.write("\n".join(links.sign("feedback", program.program_id, lid, tid, day, ch, expires)
                          for lid, tid, ch in rows))
    return f.name


def _wrk(url: str, tokens: str, seconds: int, run: str) -> dict:
    out = subprocess.run(["wrk", "-t", str(THREADS), "-c", str(CONNECTIONS), "-d", f"{seconds}s", "--timeout",
                          f"{WRK_TIMEOUT_S}s", "-s", str(LUA), url, "--", tokens, str(THREADS), run],
                         capture_output=True, text=True, check=True).stdout
    got = {line.split()[0]: line.split()[1:] for line in out.splitlines()
           if line[:1].isupper() and " " in line}
    requests, wall = int(got["REQUESTS"][0]), float(got["REQUESTS"][1])
    return {"rps": round(requests / wall, 1), "p99_ms": round(float(got["P99"][0]), 2),
            "p50_ms": round(float(got["P50"][0]), 2), "requests": requests,
            "accepted": int(got["ACCEPTED"][0]), "errors": int(got["ERRORS"][0])}


def _bench_submissions(path: Path) -> int:
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute("SELECT COUNT(*) FROM submissions WHERE submission_id LIKE 'bench-%'"
                            ).fetchone()[0]


RUNS = (("without_writers", None), ("under_writes", "email"), ("under_long_writes", "long"))


def feedback_under_writes(program: Program, day: str) -> dict:
    from music_feedback.service.process import service
    path = settings.feedback_store_path()
    tokens = _tokens(program, day, path)
    stamp = int(time.time())  # submission ids unique to this run (wrk's script adds the run's name)
    figures: dict = {}
    runs: dict[str, dict] = {}
    lost = 0
    try:
        with service(workers=WORKERS) as (url, _):
            _wrk(url, tokens, 2, f"w{stamp}-warm")
            for name, mode in RUNS:
                before = _bench_submissions(path)
                if mode is None:
                    runs[name] = _wrk(url, tokens, SECONDS, f"w{stamp}-{name}")
                else:
                    with writer(path, SECONDS + 1, mode) as written:
                        runs[name] = _wrk(url, tokens, SECONDS, f"w{stamp}-{name}")
                    figures.update({f"writer_{mode}_{k}": v for k, v in written.items()})
                lost += max(runs[name]["accepted"] - (_bench_submissions(path) - before), 0)
            # Health while a writer holds the lock (the feedback load waiting on it meanwhile).
            with writer(path, HEALTH_SECONDS + 2, "hold") as held:
                load = subprocess.Popen(["wrk", "-t", "1", "-c", "4", "-d", f"{HEALTH_SECONDS + 1}s",
                                         "--timeout", f"{WRK_TIMEOUT_S}s", "-s", str(LUA), url, "--", tokens,
                                         "1", f"w{stamp}-held"], stdout=subprocess.DEVNULL)
                time.sleep(0.5)
                health = loadgen.steady(f"{url}/healthz", {}, HEALTH_RATE, HEALTH_SECONDS, connections=2)
                load.wait(HEALTH_SECONDS + WRK_TIMEOUT_S + 10)
            figures.update({f"writer_hold_{k}": v for k, v in held.items()})
    finally:
        Path(tokens).unlink(missing_ok=True)
    for name, _ in RUNS:
        got = runs[name]
        figures.update({f"feedback_rps_{name}": got["rps"], f"feedback_p99_{name}_ms": got["p99_ms"],
                        f"feedback_p50_{name}_ms": got["p50_ms"], f"feedback_errors_{name}": got["errors"],
                        f"feedback_requests_{name}": got["requests"]})
    figures.update({"feedback_lost_under_writes": lost, "healthz_p99_under_lock_ms": health["p99_ms"],
                    "healthz_max_under_lock_ms": health["max_ms"],
                    "healthz_requests_under_lock": health["requests"],
                    "healthz_non_200_under_lock": health["non_200"]})
    return figures


def run(program: Program, args) -> tuple[dict, bool]:
    for tool in ("wrk", "hey"):
        if not shutil.which(tool):
            return {"feedback_writes_failed": f"{tool} is not installed: `make bench` installs it"}, False
    day = runner.latest_complete_day(DuckDBWarehouse(path=str(settings.warehouse_path())).meta()).isoformat()
    figures = feedback_under_writes(program, day)
    ok = (figures["feedback_lost_under_writes"] == 0 and figures["feedback_requests_under_writes"] > 0
          and figures["healthz_non_200_under_lock"] == 0)
    return figures, ok


if __name__ == "__main__":
    if sys.argv[1:2] == ["writer"]:
        print(json.dumps(write_loop(sys.argv[2], float(sys.argv[3]), sys.argv[4])), flush=True)
