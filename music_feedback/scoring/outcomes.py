"""What the weekly retrain learns from: the feature values logged at scoring time joined with what
happened to each request, or, where nothing has been logged and answered yet, the warehouse's
feedback_outcomes history.

`request_outcomes` is the one place that knows where delivery and feedback record outcomes: it reads
a REQUEST_OUTCOMES table (listener_id, track_id, batch_date, responded, liked). Point it at the
delivery ledger and feedback tables (a view over them) once they exist; until then it finds nothing
and training falls back to feedback_outcomes.
"""
from __future__ import annotations

import io
from datetime import date

import polars as pl

from music_feedback.warehouse.port import Warehouse, date_literal

REQUEST_OUTCOMES = "request_outcomes"
OUTCOME_COLUMNS = ["listener_id", "track_id", "batch_date", "responded", "liked"]


def request_outcomes(wh: Warehouse, program_id: str, end: date) -> pl.DataFrame | None:
    """Outcomes of requests from batches before `end`, or None while nothing records them."""
    have = wh.columns_of(REQUEST_OUTCOMES)
    if not have or any(c not in have for c in OUTCOME_COLUMNS):
        return None
    return wh.fetch(f"SELECT {', '.join(OUTCOME_COLUMNS)} FROM {REQUEST_OUTCOMES} "
                    f"WHERE program_id = '{program_id}' AND batch_date < {date_literal(end)}")


def logged_features(frames, scored_path: list[str], end: date) -> pl.DataFrame:
    """listener_id, track_id, batch_date and every logged feature, from the scored partitions before `end`
    (`frames`: the IO manager, wherever it keeps them)."""
    days = [d for d in frames.partitions(scored_path) if date.fromisoformat(d) < end]
    if not days:
        return pl.DataFrame()
    parts = [_unpacked(frames.read_frame(scored_path, d, ["listener_id", "track_id", "features"]))
             .with_columns(pl.lit(date.fromisoformat(d)).alias("batch_date")) for d in days]
    return pl.concat(parts, how="diagonal_relaxed")  # a day logs the features of the models of its day


def _unpacked(logged: pl.DataFrame) -> pl.DataFrame:
    """The `features` column as columns: a struct, or JSON text in partitions scored before it was one."""
    if isinstance(logged.schema["features"], pl.Struct):
        return logged.unnest("features")
    values = pl.read_ndjson(io.BytesIO("\n".join(logged["features"].to_list()).encode()), infer_schema_length=None)
    return pl.concat([logged.drop("features"), values], how="horizontal")


def training_rows(wh: Warehouse, program_id: str, frames, scored_path: list[str], end: date
                  ) -> tuple[pl.DataFrame, str]:
    """Rows with features, requested_at, responded and liked; and where they came from."""
    outcomes = request_outcomes(wh, program_id, end)
    if outcomes is not None and outcomes.height:
        logged = logged_features(frames, scored_path, end)
        if logged.height:
            rows = logged.join(outcomes, on=["listener_id", "track_id", "batch_date"], how="inner")
            if rows.height:
                return (rows.with_columns(pl.col("batch_date").cast(pl.Datetime("us")).alias("requested_at")),
                        f"{rows.height} requests: features logged at scoring time + {REQUEST_OUTCOMES}")
    wh.require("feedback_outcomes")
    rows = wh.fetch(f"SELECT * FROM feedback_outcomes WHERE program_id = '{program_id}' "
                    f"AND requested_at < {date_literal(end)}")
    return rows, f"{rows.height} requests from the warehouse's feedback_outcomes (nothing logged and answered yet)"
