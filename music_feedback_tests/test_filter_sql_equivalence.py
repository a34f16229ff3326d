"""The warehouse's SQL and the polars reference give the same day: the extract's split, the unified pairs
and, pair by pair and reason by reason, the filter chain's decisions, on generated days of several seeds and
sizes, with the program's own ledger (contacts, answers, unsubscribes) and with chains reordered, disabled
and narrowed to fewer marketplaces. The batch runs the SQL; the polars path is the bench's hand-written
limit, and this test keeps the two one definition apart."""
from __future__ import annotations

import random

import polars as pl
import pytest

from music_feedback.filters import FilterContext, build_chain, run_chain
from music_feedback.policy.contact import batch_window
from music_feedback.policy.history import add_contacts, with_suppressions
from music_feedback.programs.loader import load_programs
from music_feedback.programs.model import FilterSpec
from music_feedback.transforms import warehouse_stages
from music_feedback.transforms.stage_sql import CONTEXT
from music_feedback.transforms.unify import unify
from music_feedback.transforms.validate import EXTRACT_COLUMNS, malformed_rows_query, split_invalid
from music_feedback.warehouse import queries as q
from music_feedback.warehouse.duckdb_stage import DuckDBStageSession
from music_feedback.warehouse.duckdb_warehouse import DuckDBWarehouse
from music_feedback.warehouse.generator import WarehouseSpec, generate
from music_feedback.warehouse.port import bind_batch_window
from music_feedback_tests.conftest import BATCH_DAY

pytestmark = pytest.mark.integration

PROGRAM = next(p for p in load_programs() if p.program_id == "music-feedback")
KEYS = ["listener_id", "track_id"]


def spec(filter_id, type_, order, enabled=True, **parameters) -> FilterSpec:
    raw = {"filterId": filter_id, "type": type_, "order": order, "enabled": enabled, "parameters": parameters}
    return FilterSpec.model_validate(raw)


CHAINS = {
    "shipped": (PROGRAM.filter_chain, PROGRAM.marketplaces),
    "cap-first-then-engagement": ([spec("frequency-cap", "business-rule", 1, maxRequestsPerWeek=1),
                                   spec("engagement", "business-rule", 2, minEngagementScore=0.3),
                                   spec("trust", "trust", 3, maxBotScore=0.5),
                                   spec("eligibility", "eligibility", 4)], ["US", "JP"]),
    "disabled": ([spec("trust", "trust", 1, enabled=False), spec("eligibility", "eligibility", 2, enabled=False),
                  spec("engagement", "business-rule", 3, enabled=False)], []),
}


@pytest.fixture(scope="module", params=[(3, 8_000, 16_000), (11, 20_000, 60_000)], ids=["seed3-small", "seed11-larger"])
def day(request, tmp_path_factory):
    seed, listeners, plays = request.param
    path = tmp_path_factory.mktemp(f"equivalence{seed}") / "warehouse.duckdb"
    generate(path, WarehouseSpec(listeners=listeners, tracks=400, plays_per_day=plays, outcomes=3_000, days=2,
                                 end_date=BATCH_DAY, seed=seed), progress=False)
    return DuckDBWarehouse(path=str(path)), seed


def own_ledger(unified: pl.DataFrame, seed: int):
    """Contacts, answers and unsubscribes of the program's own, drawn from the day's pairs."""
    rng = random.Random(seed)
    pairs = unified.select(KEYS).rows()
    listeners = sorted({p[0] for p in pairs})
    contacts = pl.DataFrame({"listener_id": rng.sample(listeners, len(listeners) // 10)},
                            schema={"listener_id": pl.Int64}).with_columns(
        pl.Series("requests", [rng.randint(1, 3) for _ in range(len(listeners) // 10)], dtype=pl.Int64))
    answered = pl.DataFrame(rng.sample(pairs, len(pairs) // 20), schema={"listener_id": pl.Int64, "track_id": pl.Int64},
                            orient="row")
    return contacts, answered, set(rng.sample(listeners, len(listeners) // 50))


def polars_day(wh: DuckDBWarehouse, chain, marketplaces, own):
    conn = PROGRAM.connector
    raw = pl.concat([wh.fetch(bind_batch_window(conn.config.query, BATCH_DAY)).select(EXTRACT_COLUMNS),
                     wh.fetch(bind_batch_window(malformed_rows_query(conn.config.table), BATCH_DAY)).select(EXTRACT_COLUMNS)],
                    how="vertical_relaxed")
    valid, rejected = split_invalid(raw)
    unified = unify(valid, q.listener_context(wh), q.track_context(wh), PROGRAM.program_id, BATCH_DAY, conn.connector_id)
    contacts, answered, suppressed = own or own_ledger(unified, 0)
    ctx = FilterContext(PROGRAM.program_id, BATCH_DAY, with_suppressions(q.listener_context(wh), suppressed),
                        q.track_context(wh),
                        pl.concat([q.prior_feedback_pairs(wh, PROGRAM.program_id, BATCH_DAY), answered]),
                        add_contacts(q.recent_request_counts(wh, PROGRAM.program_id, *batch_window(BATCH_DAY)), contacts),
                        tuple(marketplaces))
    return valid, rejected, unified, run_chain(chain, unified, ctx)


def sql_day(wh: DuckDBWarehouse, chain, marketplaces, own, folder):
    """The day as the batch's assets run it (transforms/warehouse_stages.py), outputs written to `folder`."""
    program = PROGRAM.model_copy(update={"marketplaces": list(marketplaces)})
    files = {n: str(folder / f"{n}.parquet") for n in ("raw", "rejected", "unified", "kept", "decisions")}
    with wh.stage_session() as stage:
        out = warehouse_stages.extract(stage, program, BATCH_DAY, ["raw"], ["rejected"], "p")
        out.raw.write(files["raw"])
        out.rejected.write(files["rejected"])
        _, unified = warehouse_stages.unify(stage, stage.stored(["raw"], "p", files["raw"]), program, BATCH_DAY,
                                           ["unified"], "p")
        unified.write(files["unified"])
        warehouse_stages.upload_ledger(stage, *own)
        decided = warehouse_stages.filter_chain(stage, stage.stored(["unified"], "p", files["unified"]), chain, program,
                                                BATCH_DAY, ["kept"], ["decisions"], "p")
        decided.kept.write(files["kept"])
        decided.decisions.write(files["decisions"])
    return {n: pl.read_parquet(f) for n, f in files.items()}


def sorted_rows(frame: pl.DataFrame, columns) -> list[tuple]:
    return sorted(frame.select(pl.col(c).cast(pl.String) for c in columns).rows(), key=lambda r: tuple(map(str, r)))


@pytest.mark.parametrize("chain_name, passes", [(name, 1) for name in CHAINS] + [("shipped", 3), ("cap-first-then-engagement", 3)])
def test_sql_and_polars_agree_pair_by_pair(day, chain_name, passes, tmp_path, monkeypatch):
    """`passes`: the chain run over listener ranges one after another, as DuckDB runs a large day."""
    wh, seed = day
    specs, marketplaces = CHAINS[chain_name]
    chain = build_chain(specs)
    first = polars_day(wh, chain, marketplaces, None)
    own = own_ledger(first[2], seed)
    valid, rejected, unified, result = polars_day(wh, chain, marketplaces, own)
    listeners = wh.fetch("SELECT COUNT(*) AS n FROM listeners")["n"][0]
    monkeypatch.setattr(DuckDBStageSession, "listeners_per_pass", -(-listeners // passes))
    got = sql_day(wh, chain, marketplaces, own, tmp_path)

    assert sorted_rows(got["raw"], EXTRACT_COLUMNS) == sorted_rows(valid, EXTRACT_COLUMNS)
    assert sorted_rows(got["rejected"], [*EXTRACT_COLUMNS, "reason"]) == sorted_rows(rejected, [*EXTRACT_COLUMNS, "reason"])
    columns = [c for c in got["unified"].columns if c in unified.columns]  # the context joins the kept pairs
    assert len(columns) >= 11
    assert sorted_rows(got["unified"], columns) == sorted_rows(unified, columns)

    s_kept = got["kept"]
    assert sorted_rows(s_kept, KEYS) == sorted_rows(result.kept, KEYS)
    if passes == 1:  # in listener and track order; in passes, within each pass's listeners
        assert s_kept.select(KEYS).equals(s_kept.select(KEYS).sort(KEYS))
    whole = [c for c in result.kept.columns if c in s_kept.columns]  # every column, context included
    assert set(CONTEXT) | {"prior_requests", "play_count", "genre"} <= set(whole)
    assert sorted_rows(s_kept, whole) == sorted_rows(result.kept, whole)
    assert s_kept.schema["prior_requests"] == pl.Int64
    decision_columns = [*KEYS, "filter", "reason"]
    assert sorted_rows(got["decisions"], decision_columns) == sorted_rows(result.decisions, decision_columns)
    assert result.kept.height > 0 or chain_name != "shipped"
    assert result.decisions["reason"].n_unique() >= (5 if chain_name == "shipped" else 2)  # the day exercises them
