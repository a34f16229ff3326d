"""Run Great Expectations 1.x suites against polars frames.

GX has no polars engine, so only the columns the expectations touch are converted to
pandas and validated through one cached ephemeral context. GX is imported lazily: its
import costs seconds and must not slow down loading the Dagster definitions.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    import pandas as pd
    import polars as pl

from music_feedback.quality.expectations import Expectation, ExpectationOutcome, SuiteResult

# --- GX plumbing -------------------------------------------------------------------------

_LOCK = threading.Lock()  # GX loads each frame under one fixed batch id: one run at a time
_STATE: "_GxState | None" = None
# The GX worker process judging this process's suites, if one runs: quality.gx_worker registers it
# (start) and removes it (stop), so this module never imports the worker's.
_WORKER: Any = None


def use_worker(worker: Any) -> None:
    """Judge suites in `worker` (a gx_worker.GxWorker: `judge(...)` gives the outcomes, or None once it has
    died), or in this process again with None."""
    global _WORKER
    _WORKER = worker


@dataclass
class _GxState:
    gx: Any
    gxe: Any
    context: Any
    batch_definition: Any


def _gx_state() -> _GxState:
    """Build the ephemeral context once per process; call with _LOCK held."""
    global _STATE
    if _STATE is not None:
        return _STATE


    # lazy: great_expectations: ~2.8 s of the code location's load
    import great_expectations as gx

    # lazy: great_expectations, as above
    import great_expectations.expectations as gxe

    # lazy: great_expectations, as above
    from great_expectations.data_context.data_context.context_factory import project_manager

    # lazy: great_expectations, as above
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    # lazy: great_expectations, as above
    from great_expectations.exceptions import DataContextRequiredError

    gx_logger = logging.getLogger("great_expectations")
    if gx_logger.level == logging.NOTSET:  # respect explicit logging config
        gx_logger.setLevel(logging.ERROR)

    try:  # get_context() makes ours the global "current" context; give it back afterwards
        previous = project_manager.get_current_project()
    except DataContextRequiredError:
        previous = None
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        progress_bars=ProgressBarsConfig(globally=False),
        analytics_enabled=False,
    )
    context = gx.get_context(mode="ephemeral", project_config=config)
    if previous is not None:
        project_manager.set_project(previous)

    # One datasource/asset/batch definition for every suite: the frame and the suite are
    # passed per call and never saved, so repeated suite names cannot collide.
    asset = context.data_sources.add_pandas("music_feedback_quality").add_dataframe_asset("frame")
    batch_definition = asset.add_batch_definition_whole_dataframe("whole_frame")
    _STATE = _GxState(gx=gx, gxe=gxe, context=context, batch_definition=batch_definition)
    return _STATE


def warm_up_in_background() -> threading.Thread | None:
    """Import GX and build its context on a thread while the first stages query and compute (DuckDB and
    polars release the GIL), so the first check does not pay ~1.3 s of imports on the critical path.
    Nothing to do when a GX worker process judges this process's suites."""
    if _WORKER is not None:
        return None

    def build() -> None:
        with _LOCK:
            _gx_state()

    thread = threading.Thread(target=build, name="gx-warm-up", daemon=True)
    thread.start()
    return thread


def _release(state: _GxState) -> None:
    """Drop the engine's references to the last frame and its metric cache (memory)."""
    try:
        engine = state.batch_definition.data_asset.datasource.get_execution_engine()
        engine.batch_manager.reset_batch_cache()
        engine.batch_manager.batch_data_cache.clear()
        engine._metric_cache.clear()
    except AttributeError:
        pass


def _to_pandas(df: "pl.DataFrame", columns: list[str]) -> "pd.DataFrame":
    """Convert only `columns`; integer columns with nulls stay exact via pyarrow dtypes.

    The default conversion turns such columns into float64, which merges ids above 2**53
    (false duplicates) and shifts bounds; numpy-backed dtypes are kept elsewhere because
    GX's between check is ~6x slower on pyarrow-backed floats.
    """
    if not columns:
        import pandas as pd  # lazy: importing music_feedback.quality must not load pandas (~0.4 s)
        return pd.DataFrame(index=pd.RangeIndex(df.height))
    sub = df.select(columns)
    exact = [c for c, dt in sub.schema.items() if dt.is_integer() and sub[c].null_count() > 0]
    if not exact:
        return sub.to_pandas()
    pdf = sub.drop(exact).to_pandas()
    for c in exact:
        pdf[c] = sub[c].to_pandas(use_pyarrow_extension_array=True)
    return pdf[columns]


def _plain(value: Any) -> Any:
    """numpy/pandas scalars and NaN/NA -> plain Python, so metadata serialises cleanly."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            value = value.item()
        except (ValueError, TypeError):
            pass
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if type(value).__name__ in ("NAType", "NaTType"):
        return None
    return value


def _outcome(spec: Expectation, evr: Any) -> ExpectationOutcome:
    result = evr.result or {}
    info = evr.exception_info or {}
    error = None
    if info.get("raised_exception"):
        error = str(info.get("exception_message") or "GX raised an exception")
    return ExpectationOutcome(
        expectation=spec.describe(),
        success=bool(evr.success),
        unexpected_count=result.get("unexpected_count"),
        partial_unexpected=[_plain(v) for v in result.get("partial_unexpected_list") or []],
        observed_value=_plain(result.get("observed_value")),
        error=error,
    )


def judge_here(pdf: "pd.DataFrame", specs: list[Expectation], runnable: list[int], suite_name: str,
               result_format: str, max_examples: int) -> list[tuple[int, ExpectationOutcome]]:
    """GX judges the runnable expectations on `pdf`, in this process."""
    with _LOCK:
        state = _gx_state()
        gx_expectations = [
            specs[i]._to_gx(state.gxe, meta={"mf_index": i}, description=specs[i].describe())
            for i in runnable
        ]
        # Built via the constructor and never saved: add_expectation() would look the
        # name up in the current context's store.
        suite = state.gx.ExpectationSuite(name=suite_name, expectations=gx_expectations)
        try:
            batch = state.batch_definition.get_batch(batch_parameters={"dataframe": pdf})
            suite_result = batch.validate(
                suite,
                result_format={
                    "result_format": result_format,
                    "partial_unexpected_count": max_examples,
                },
            )
        finally:
            _release(state)
    out = []
    for evr in suite_result.results:
        i = (evr.expectation_config.meta or {})["mf_index"]
        out.append((i, _outcome(specs[i], evr)))
    return out


def _judge(pdf, specs, runnable, suite_name, result_format, max_examples):
    """In the GX worker process when one runs (see gx_worker), else here."""
    worker = _WORKER
    if worker is not None:
        found = worker.judge(pdf, specs, runnable, suite_name, result_format, max_examples)
        if found is not None:
            return found
    return judge_here(pdf, specs, runnable, suite_name, result_format, max_examples)


def validate(
    df: "pl.DataFrame",
    suite_name: str,
    expectations: Sequence[Expectation],
    *,
    result_format: str = "BASIC",
    max_examples: int = 5,
) -> SuiteResult:
    """Validate `df` against `expectations` with GX; results follow the input order.

    result_format "BASIC" gives counts and `max_examples` offending values; "BOOLEAN_ONLY"
    gives pass/fail only (unexpected_count None). A missing column fails the expectations
    that need it instead of raising.
    """
    start = time.perf_counter()
    specs = list(expectations)
    outcomes: list[ExpectationOutcome | None] = [None] * len(specs)

    present = set(df.columns)
    needed: list[str] = []
    runnable: list[int] = []
    for i, spec in enumerate(specs):
        missing = [c for c in spec.needed_columns if c not in present]
        if missing:
            outcomes[i] = ExpectationOutcome(
                spec.describe(), False, error=f"missing column(s): {', '.join(missing)}"
            )
            continue
        runnable.append(i)
        needed.extend(c for c in spec.needed_columns if c not in needed)

    if runnable:
        for i, outcome in _judge(_to_pandas(df, needed), specs, runnable, suite_name, result_format, max_examples):
            outcomes[i] = outcome

    results = [o for o in outcomes if o is not None]
    assert len(results) == len(specs), "GX returned fewer results than expectations"
    return SuiteResult(
        success=all(r.success for r in results),
        results=results,
        elapsed_s=time.perf_counter() - start,
        suite_name=suite_name,
        row_count=df.height,
    )
