"""The filter chain as one SQL query the warehouse runs: each filter's reasons as a CASE expression, the
first filter in chain order that gives a reason removes the pair, as the chain in Python does.

The query reads a relation of the day's candidates (`candidates`) joined to what the filters read:
listeners (with the program's own unsubscribes), tracks, the pairs already answered and the week's prior
requests (the warehouse's plus the program's own ledger's, uploaded for the session)."""
from __future__ import annotations

import math
from dataclasses import dataclass

from music_feedback.filters.base import CandidateFilter

# The columns a filter's SQL may read from the joined candidates (see `chain_query`).
SIGNALS = ("bot_score", "is_authentic", "opted_out", "feedback_eligible", "answered", "listener_engagement",
           "prior_requests")


class NotExpressible(ValueError):
    """A filter's configuration the warehouse's SQL cannot hold; the message names the filter and key."""


def literal(value, where: str) -> str:
    """`value` as a portable SQL literal (DuckDB, PostgreSQL, Redshift), or NotExpressible naming `where`."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        if not -2**63 <= value < 2**63:
            raise NotExpressible(f"{where}: {value} does not fit a 64-bit SQL integer")
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise NotExpressible(f"{where}: {value} has no SQL literal (only finite numbers)")
        return repr(value)
    if isinstance(value, str):
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
            raise NotExpressible(f"{where}: {value!r} holds a control character, which a SQL text literal "
                                 "cannot carry portably")
        return "'" + value.replace("'", "''") + "'"
    raise NotExpressible(f"{where}: {value!r} ({type(value).__name__}) has no SQL literal; use a number, "
                         "a boolean or text")


@dataclass(frozen=True)
class SqlChain:
    """What `chain_query` needs to know besides the filters."""
    marketplaces: tuple[str, ...] = ()


def require_sql(flt: CandidateFilter, chain: SqlChain = SqlChain()) -> None:
    """Refuse at load a filter the warehouse cannot run: no SQL definition, or a value with no literal."""
    if type(flt).sql is CandidateFilter.sql:
        raise NotExpressible(f"filter '{flt.name}' ({flt.kind}): has no SQL definition, and the batch's filter "
                             "chain runs in the warehouse")
    for key, value in flt.params.items():
        literal(value, f"filter '{flt.name}': parameter {key}")
    flt.sql(chain)


def chain_query(chain: list[CandidateFilter], candidates: str, context: SqlChain) -> str:
    """Every candidate with `removed_by` (the filter's name, null when kept), `reason`, and each filter's
    own reason as `reason_<i>`: the row-wise filters' reasons in one layer, and before each filter that
    ranks a listener's pairs (the cap) a layer numbering the pairs no earlier filter removed."""
    enabled = [f for f in chain if f.enabled]
    layers, pending, done, prev = [], [], [], candidates

    def flush():
        nonlocal prev
        if pending:
            layers.append((f"reasons_{len(layers)}", f"SELECT c.*, {', '.join(pending)} FROM {prev} c"))
            prev = layers[-1][0]
            done.extend(pending)
            pending.clear()

    for i, flt in enumerate(enabled):
        if flt.ranks:
            flush()
            survivor = f"COALESCE({', '.join(f'reason_{j}' for j in range(i))}) IS NULL" if i else "TRUE"
            # The window sees only the survivors' keys and order columns (a window carrying every column of
            # 1.5M pairs took seconds); their numbers join back on the pair.
            layers.append((f"survivors_{i}", f"SELECT listener_id, track_id, ROW_NUMBER() OVER (PARTITION BY "
                           f"listener_id ORDER BY {flt.rank_order()}) AS rank_{i} FROM {prev} c WHERE {survivor}"))
            layers.append((f"ranked_{i}", f"SELECT c.*, s.rank_{i} FROM {prev} c LEFT JOIN survivors_{i} s "
                           "ON s.listener_id = c.listener_id AND s.track_id = c.track_id"))
            prev = layers[-1][0]
            pending.append(f"{flt.sql(context, rank=f'rank_{i}')} AS reason_{i}")
        else:
            pending.append(f"{flt.sql(context)} AS reason_{i}")
    flush()
    columns = [f"reason_{i}" for i in range(len(enabled))]
    if columns:
        names = "CASE " + " ".join(f"WHEN {c} IS NOT NULL THEN {literal(f.name, 'filter name')}"
                                   for c, f in zip(columns, enabled)) + " END"
        reason = columns[0] if len(columns) == 1 else f"COALESCE({', '.join(columns)})"
    else:
        names = reason = "CAST(NULL AS VARCHAR)"
    with_clause = "WITH " + ", ".join(f"{n} AS ({q})" for n, q in layers) + " " if layers else ""
    return f"{with_clause}SELECT c.*, {names} AS removed_by, {reason} AS reason FROM {prev} c"
