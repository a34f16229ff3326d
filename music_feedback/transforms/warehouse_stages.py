"""The batch's warehouse-side stages, each inside a stage session (warehouse/stage.py): the extract's split,
the unify and the filter chain with its guard. The assets run these; tests run them on every warehouse
adapter without Dagster. Each returns its outputs as FrameChunks the IO manager writes while the session
is open, and the few numbers the stage reports."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Sequence

import polars as pl

from music_feedback.filters.base import CandidateFilter
from music_feedback.filters.sql import SqlChain, chain_query
from music_feedback.io.chunks import FrameChunks
from music_feedback.policy.contact import ContactPolicy, batch_window
from music_feedback.policy.guard import GUARD_STATS, guard_sql
from music_feedback.programs.model import Program
from music_feedback.transforms.stage_sql import candidates_sql, extract_sql, kept_sql, rejected_sql, unify_sql
from music_feedback.transforms.validate import EXTRACT_COLUMNS, malformed_rows_query
from music_feedback.warehouse import queries as q
from music_feedback.warehouse.queries import listeners_between
from music_feedback.warehouse.port import WarehouseError, bind_batch_window, date_literal
from music_feedback.warehouse.stage import StageSession

# What the kept rows carry besides the unified columns and context: the signals the chain judged them by.
KEPT_SIGNALS = ("bot_score", "is_authentic", "opted_out", "feedback_eligible", "prior_requests")
Path = Sequence[str]


@dataclass
class Extracted:
    rejected_by_reason: dict[str, int]
    raw: FrameChunks
    rejected: FrameChunks


def extract(stage: StageSession, program: Program, day: date, raw_path: Path, rejected_path: Path,
            partition: str) -> Extracted:
    connector = program.connector
    query = bind_batch_window(connector.config.query, day)
    try:
        selected = stage.fetch(f"SELECT * FROM ({query}) q LIMIT 0").columns
    except WarehouseError as exc:
        raise WarehouseError(f"connector '{connector.connector_id}': {exc}") from None
    missing = [c for c in EXTRACT_COLUMNS if c not in selected]
    if missing:
        raise WarehouseError(f"connector '{connector.connector_id}': its query does not select "
                             f"{', '.join(missing)}; the extract needs {', '.join(EXTRACT_COLUMNS)}")
    stage.create("rejected", rejected_sql(query, bind_batch_window(malformed_rows_query(connector.config.table), day)))
    reasons = dict(stage.fetch("SELECT reason, COUNT(*) AS n FROM rejected GROUP BY reason ORDER BY reason")
                   .iter_rows())
    return Extracted({k: int(v) for k, v in reasons.items()}, stage.output(extract_sql(query), raw_path, partition),
                     stage.output("SELECT * FROM rejected", rejected_path, partition))


def unify(stage: StageSession, raw: str, program: Program, day: date, path: Path, partition: str
          ) -> tuple[int, FrameChunks]:
    """(the raw plays' count, the unified pairs): the pairs' count is the output's, known once written.
    Grouped a listener range at a time (`listener_passes`), one range after another: a range's groups fit in
    memory, and the output comes out clustered by range, so each of the filter's passes reads only its own
    row groups (at 20x, 29 s for the chain instead of 38 s reading the whole day each pass)."""
    raw_rows = int(stage.fetch(f"SELECT COUNT(*) AS n FROM {raw} r")["n"][0])
    sql = " UNION ALL ".join(unify_sql(listeners_between(raw, lo, hi), program.program_id, day,
                                       program.connector.connector_id) for lo, hi in listener_passes(stage))
    return raw_rows, stage.output(sql, path, partition)


def upload_ledger(stage: StageSession, contacts: pl.DataFrame, answered: pl.DataFrame, suppressed) -> None:
    """The program's own ledger, which the warehouse does not hold yet: its contacts of the week
    (listener_id, requests), the pairs answered and who unsubscribed, as session tables the SQL joins."""
    stage.upload("own_contacts", contacts.select(pl.col("listener_id").cast(pl.Int64), pl.col("requests").cast(pl.Int64)))
    stage.upload("own_answered", answered.select(pl.col("listener_id").cast(pl.Int64), pl.col("track_id").cast(pl.Int64)))
    stage.upload("own_suppressed", pl.DataFrame({"listener_id": sorted(suppressed)}, schema={"listener_id": pl.Int64}))


def listener_passes(stage: StageSession) -> list[tuple[int | None, int | None]]:
    """Listener id ranges the unify and the chain run in, one after another: the unify groups by listener
    and every join of the chain but the tracks' is on the listener, so a range's pairs need only its
    listeners. A warehouse that spills (DuckDB at its memory limit) runs a million listeners at a time,
    whose joins fit in memory; one pass elsewhere."""
    per_pass = stage.listeners_per_pass
    if not per_pass:
        return [(None, None)]
    lo, hi, n = stage.fetch("SELECT MIN(listener_id) AS lo, MAX(listener_id) AS hi, COUNT(*) AS n "
                            "FROM listeners").row(0)
    passes = max(1, -(-int(n or 0) // per_pass))
    if passes == 1 or lo is None:
        return [(None, None)]
    step = -(-(int(hi) - int(lo) + 1) // passes)
    return [(a, min(a + step - 1, int(hi))) for a in range(int(lo), int(hi) + 1, step)]


@dataclass
class Decided:
    counts: pl.DataFrame  # removed_by (null: kept), reason, n
    guard: dict[str, int]  # policy/guard.GUARD_STATS
    kept: FrameChunks
    decisions: FrameChunks

    @property
    def total(self) -> int:
        return int(self.counts["n"].sum())

    def removed_by_filter(self, chain: list[CandidateFilter]) -> dict[str, int]:
        removed = self.counts.filter(pl.col("removed_by").is_not_null())
        return {f.name: 0 for f in chain if f.enabled} | {k: int(v) for k, v in removed.group_by(
            "removed_by", maintain_order=True).agg(pl.col("n").sum()).iter_rows()}

    def removed_by_reason(self) -> dict[str, int]:
        removed = self.counts.filter(pl.col("removed_by").is_not_null())
        return {k: int(v) for k, v in removed.group_by("reason").agg(pl.col("n").sum()).sort("reason").iter_rows()}


def filter_chain(stage: StageSession, unified: str, chain: list[CandidateFilter], program: Program, day: date,
                 kept_path: Path, decisions_path: Path, partition: str) -> Decided:
    """The chain over the unified pairs (the ledger uploaded first), its counts, the guard over what it
    kept, and the kept pairs and the decisions as outputs."""
    answered = q.prior_feedback_pairs_sql(program.program_id, day)
    prior = q.recent_request_counts_sql(program.program_id, *batch_window(day))
    parts = []
    passes = listener_passes(stage)
    for i, (lo, hi) in enumerate(passes):
        # A pass's joins in one query: a pass's listeners fit in memory, and a step of its own for each join
        # (written to scratch and read back) cost 0.4 s at 1x and 4 s at 20x.
        sides = (unified, "listeners", f"({answered})", f"({prior})")
        candidates = candidates_sql(*(listeners_between(side, lo, hi) for side in sides))
        chained = chain_query(chain, f"({candidates})", SqlChain(tuple(program.marketplaces)))
        stage.create(f"decided_{i}", f"SELECT listener_id, track_id, removed_by, reason, {', '.join(KEPT_SIGNALS)} "
                                     f"FROM ({chained}) c")
        parts.append(f"SELECT * FROM decided_{i}")
        if len(passes) > 1:  # the kept pairs' columns, a pass at a time too
            stage.create(f"kept_{i}", kept_sql(f"decided_{i}", listeners_between(unified, lo, hi),
                                               KEPT_SIGNALS, listeners_between("listeners", lo, hi)))
    decided = f"({' UNION ALL '.join(parts)})"
    # One pass: in listener and track order. Several: each pass's in that order (a global sort of a 20x
    # day's kept rows ran DuckDB out of memory at its limit; nothing downstream needs it).
    kept_rows = (kept_sql(decided, unified, KEPT_SIGNALS) if len(passes) == 1 else
                 " UNION ALL ".join(f"SELECT * FROM kept_{i}" for i in range(len(passes))))
    counts = stage.fetch(f"SELECT removed_by, reason, COUNT(*) AS n FROM {decided} d GROUP BY removed_by, reason "
                         "ORDER BY removed_by, reason")
    # The guard a pass at a time too: its joins and its window are on the listener (over a 50x day's 9.9M kept
    # pairs at once it ran DuckDB out of memory at its limit, one run in two).
    guard, policy = dict.fromkeys(GUARD_STATS, 0), ContactPolicy.of_chain(chain)
    for i, (lo, hi) in enumerate(passes):
        kept = f"(SELECT listener_id, track_id FROM decided_{i} d WHERE reason IS NULL)"
        stats = stage.fetch(guard_sql(kept, policy, program.program_id, day,
                                      listeners=(lo, hi))).row(0, named=True)
        guard = {k: guard[k] + int(stats[k] or 0) for k in GUARD_STATS}
    decisions = ("SELECT listener_id, track_id, 'filter' AS stage, removed_by AS filter, reason, "
                 f"{date_literal(day)} AS batch_date FROM {decided} d WHERE reason IS NOT NULL")
    return Decided(counts, guard, stage.output(kept_rows, kept_path, partition),
                   stage.output(decisions, decisions_path, partition))
