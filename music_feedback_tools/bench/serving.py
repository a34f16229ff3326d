"""The serving section of `make bench`: the service over loopback on the default-scale SQLite store
(14 live days), loaded by `hey` at a steady rate, and a default day stored into DynamoDB Local."""
from __future__ import annotations

import os
import sys
import time
from datetime import date
from urllib.parse import quote

import httpx

from music_feedback import runner, settings
from music_feedback_tools.bench import loadgen
from music_feedback_tools.bench.history import day_rows, fill_history
from music_feedback.service.process import service
from music_feedback.programs.model import Program
from music_feedback.store import SQLiteCandidateStore
from music_feedback.warehouse.duckdb_warehouse import DuckDBWarehouse

RATE, SECONDS = 200, 10
WORKERS = 2  # one per core, as the README's figures state (the service helper defaults to 1)
EMAIL_QUERY = {"minScore": "0.6", "limit": "100000"}  # the seed's email read


def full_retrieval(client: httpx.Client, path: str) -> tuple[dict, list[str]]:
    """Every page of the email query; returns its figures and each page's cursor."""
    started, cursors, rows, cursor = time.perf_counter(), [], 0, None
    while True:
        r = client.get(path, params={**EMAIL_QUERY, **({"cursor": cursor} if cursor else {})})
        r.raise_for_status()
        body = r.json()
        rows += body["count"]
        cursor = body["nextCursor"]
        if cursor is None:
            break
        cursors.append(cursor)
    return {"full_retrieval_100k_s": round(time.perf_counter() - started, 3), "full_retrieval_rows": rows,
            "full_retrieval_pages": len(cursors) + 1}, cursors


def _load(url: str, headers: dict, urls: list[str], name: str) -> dict:
    for u in urls:  # warm each worker's caches (cutoffs) before measuring
        loadgen.steady(url + u, headers, rate=40, seconds=1)
    runs = [loadgen.steady(url + u, headers, RATE, SECONDS) for u in urls]
    lat = [x for r in runs for x in r["latencies"]]
    return {f"{name}_p99_ms": round(loadgen.percentile(lat, 0.99), 2),
            f"{name}_p50_ms": round(loadgen.percentile(lat, 0.50), 2),
            f"{name}_rate_per_s": round(sum(r["rate"] for r in runs) / len(runs), 1),
            f"{name}_non_200": sum(r["non_200"] for r in runs)}


def serving_figures(program: Program, store: SQLiteCandidateStore) -> dict:
    path = f"/v1/programs/{program.program_id}/channels/email/candidates"
    listener = next(r["listener_id"] for r in store.for_channel(program.program_id, "voice-assistant", limit=1))
    with service(WORKERS) as (url, headers), httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        client.get(path, params=EMAIL_QUERY).raise_for_status()  # the first read ranks the heavy tracks
        figures, cursors = full_retrieval(client, path)
        query = "&".join(f"{k}={v}" for k, v in EMAIL_QUERY.items())
        # First page, middle and last page of the seed's query, each at the steady rate.
        pages = [f"{path}?{query}"] + [f"{path}?{query}&cursor={quote(c)}" for c in (cursors[len(cursors) // 2],
                                                                                    cursors[-1])]
        figures.update(_load(url, headers, pages, "serving_page"))
        figures.update(_load(url, headers, [f"/v1/programs/{program.program_id}/listeners/{listener}/candidates"],
                             "listener_lookup"))
        # The floor: an endpoint that does nothing, through the same server and load generator.
        floor = _load(url, headers, ["/healthz"], "healthz")
        figures.update({k: v for k, v in floor.items() if k.endswith(("p99_ms", "p50_ms"))})
    return figures


def dynamodb_local_figures(program: Program, day: date) -> dict:
    from music_feedback.store.dynamodb import DynamoDBCandidateStore
    from music_feedback.store.dynamodb import local
    frame = day_rows(program, day)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    with local.running(heap="2g") as endpoint:
        ddb = DynamoDBCandidateStore(table_name="bench-candidates", endpoint_url=endpoint, writers=4)
        ddb.create_table(ttl=False)
        started = time.perf_counter()
        ddb.put_batch(program.program_id, day.isoformat(), frame)
        total = time.perf_counter() - started
        stats = ddb.last_write
    return {"dynamodb_local_load_200k_s": round(total, 2), "dynamodb_local_rows": frame.height,
            "dynamodb_local_items_per_s": round(frame.height / total), "dynamodb_local_encode_s": round(stats.encode_s, 2),
            "dynamodb_local_write_s": round(stats.write_s, 2), "dynamodb_local_requests": stats.requests,
            "dynamodb_local_writers": ddb.writers}


def run(program: Program, args) -> tuple[dict, bool]:
    store = SQLiteCandidateStore(path=str(settings.store_path()))
    day = runner.latest_complete_day(DuckDBWarehouse(path=str(settings.warehouse_path())).meta())
    started = time.perf_counter()
    filled = fill_history(store, program, day)
    figures: dict = {"serving_history_days_added": filled, "serving_history_fill_s": round(time.perf_counter() - started, 2),
                     "serving_store_rows": store.count(program.program_id)}
    problem = loadgen.hey_missing()
    if problem:
        print(problem, file=sys.stderr)
        return {**figures, "serving_failed": problem}, False
    figures.update(serving_figures(program, store))
    from music_feedback.store.dynamodb import local
    if local.missing_reason():
        print(local.missing_reason(), file=sys.stderr)
        return {**figures, "dynamodb_local_failed": local.missing_reason()}, False
    figures.update(dynamodb_local_figures(program, day))
    ok = figures["full_retrieval_rows"] == 100_000 and not figures["serving_page_non_200"]
    return figures, ok
