"""Tests for the GX runner: each expectation type passes on clean data and fails, with the
right counts, on data built to violate it."""

import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from music_feedback.quality import (
    Between,
    InSet,
    MaxValue,
    NotInSet,
    NotNull,
    RowCountBetween,
    SuiteResult,
    Unique,
    validate,
)

pytestmark = pytest.mark.unit

REPO_ROOT = Path(__file__).resolve().parents[1]


def run_python(code: str) -> None:
    """Fresh interpreter, so sys.modules and GX's global context start clean."""
    path = os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr


MARKETPLACES = ("US", "GB", "DE", "FR", "JP", "BR")


@pytest.fixture
def good() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "listener_id": [1, 1, 2, 2, 3, 3],
            "track_id": [10, 11, 10, 11, 10, 11],
            "score": [0.0, 0.25, 0.5, 0.75, 1.0, 0.9],
            "marketplace": ["US", "GB", "DE", "FR", "JP", "BR"],
            "unused": ["a", "b", "c", "d", "e", "f"],
        }
    )


def full_suite() -> list:
    return [
        Unique(("listener_id", "track_id")),
        NotNull("listener_id"),
        NotNull("track_id"),
        NotNull("score"),
        Between("score", 0, 1),
        InSet("marketplace", MARKETPLACES),
        NotInSet("marketplace", ["XX"]),
        RowCountBetween(1, None),
    ]


def single(df: pl.DataFrame, spec):
    result = validate(df, "single", [spec])
    assert len(result.results) == 1
    return result, result.results[0]


def test_passing_frame_passes(good):
    result = validate(good, "ratings", full_suite())
    assert isinstance(result, SuiteResult)
    assert result.success, result.summary()
    assert [r.expectation for r in result.results] == [s.describe() for s in full_suite()]
    assert all(r.success and not r.error for r in result.results)
    assert [r.unexpected_count for r in result.results[:-1]] == [0] * 7
    assert result.elapsed_s > 0
    assert result.row_count == 6
    assert "passed" in result.summary()


def test_results_keep_input_order(good):
    specs = [RowCountBetween(None, 100), Between("score", 0, 1), Unique("marketplace"), NotNull("score")]
    result = validate(good, "order", specs)
    assert [r.expectation for r in result.results] == [s.describe() for s in specs]
    assert result.results[0].expectation == "row count <= 100"


def test_compound_unique_fails(good):
    df = pl.concat([good, good.head(2)])  # two duplicated pairs -> 4 offending rows
    result, out = single(df, Unique(("listener_id", "track_id")))
    assert not result.success and not out.success
    assert out.expectation == "listener_id, track_id unique"
    assert out.unexpected_count == 4
    assert {"listener_id": 1, "track_id": 10} in out.partial_unexpected


def test_single_column_unique_fails(good):
    result, out = single(good, Unique("listener_id"))
    assert not out.success
    assert out.expectation == "listener_id unique"
    assert out.unexpected_count == 6
    assert set(out.partial_unexpected) <= {1, 2, 3}


def test_not_null_fails(good):
    df = good.with_columns(score=pl.when(pl.col("listener_id") == 2).then(None).otherwise("score"))
    _, out = single(df, NotNull("score"))
    assert not out.success
    assert out.unexpected_count == 2
    assert out.partial_unexpected == [None, None]


def test_between_fails(good):
    df = good.with_columns(score=pl.Series([-0.1, 0.5, 1.5, 2.0, 0.2, None]))
    _, out = single(df, Between("score", 0, 1))
    assert not out.success
    assert out.unexpected_count == 3  # nulls are NotNull's business
    assert sorted(out.partial_unexpected) == [-0.1, 1.5, 2.0]
    assert out.expectation == "0 <= score <= 1"


def test_max_value_is_one_sided_between(good):
    assert MaxValue("score", 0.5) == Between("score", None, 0.5)
    _, out = single(good, MaxValue("score", 0.5))
    assert not out.success
    assert out.unexpected_count == 3
    assert out.expectation == "score <= 0.5"


def test_in_set_fails(good):
    df = good.with_columns(marketplace=pl.Series(["US", "XX", "US", "YY", "XX", None]))
    _, out = single(df, InSet("marketplace", MARKETPLACES))
    assert not out.success
    assert out.unexpected_count == 3
    assert sorted(out.partial_unexpected) == ["XX", "XX", "YY"]


def test_not_in_set_fails(good):
    _, out = single(good, NotInSet("marketplace", {"US", "GB"}))
    assert not out.success
    assert out.unexpected_count == 2
    assert out.expectation == "marketplace not in {GB, US}"


def test_row_count_fails(good):
    specs = [RowCountBetween(10, None), RowCountBetween(None, 5), RowCountBetween(6, 6)]
    result = validate(good, "rows", specs)
    assert [r.success for r in result.results] == [False, False, True]
    assert result.results[0].observed_value == 6
    assert result.results[0].unexpected_count is None
    assert "observed 6" in result.summary()


def test_empty_frame(good):
    empty = good.clear()
    result = validate(empty, "empty", full_suite()[:-1])
    assert result.success, result.summary()
    assert result.row_count == 0
    result = validate(empty, "empty", [RowCountBetween(1, None), NotNull("score")])
    assert [r.success for r in result.results] == [False, True]
    assert result.results[0].observed_value == 0


def test_missing_column_fails_without_raising(good):
    result = validate(good, "missing", [NotNull("nope"), NotNull("score")])
    assert [r.success for r in result.results] == [False, True]
    assert "nope" in result.results[0].error


def test_no_expectations(good):
    result = validate(good, "nothing", [])
    assert result.success and result.results == []


def test_large_int_ids_with_nulls_stay_exact():
    # float64 conversion would merge 2**60 and 2**60 + 1 into one value.
    df = pl.DataFrame({"listener_id": [2**60, 2**60 + 1, None], "track_id": [1, 1, 1]})
    specs = [Unique(("listener_id", "track_id")), Unique("listener_id"), Between("listener_id", 0, 2**60)]
    result = validate(df, "ids", specs)
    assert [r.unexpected_count for r in result.results] == [0, 0, 1]
    assert result.results[2].partial_unexpected == [2**60 + 1]


def test_same_suite_name_repeatedly_with_different_frames(good):
    bad = good.with_columns(score=pl.lit(5.0))
    for _ in range(3):
        assert validate(good, "ratings", full_suite()).success
        result = validate(bad, "ratings", full_suite())
        assert not result.success
        assert result.results[4].unexpected_count == 6
        assert [r.success for r in result.results].count(False) == 1


def test_duplicate_specs_each_get_a_result(good):
    result = validate(good, "dups", [NotNull("score"), NotNull("score")])
    assert len(result.results) == 2 and result.success


def test_boolean_only_format(good):
    df = good.with_columns(score=pl.lit(2.0))
    result = validate(df, "fast", [Between("score", 0, 1)], result_format="BOOLEAN_ONLY")
    assert not result.success
    assert result.results[0].unexpected_count is None


def test_summary_lists_failures(good):
    df = pl.concat([good, good.head(1)])
    text = validate(df, "ratings", full_suite()).summary()
    assert text.startswith("suite 'ratings' FAILED: 7/8")
    assert "FAIL listener_id, track_id unique: 2 unexpected" in text


def test_spec_validation():
    with pytest.raises(ValueError):
        Between("x")
    with pytest.raises(ValueError):
        RowCountBetween()
    with pytest.raises(ValueError):
        Unique(())
    assert Unique("a").columns == ("a",)
    assert hash(InSet("m", ["a", "b"])) == hash(InSet("m", ("a", "b")))


def test_importing_quality_does_not_import_gx():
    code = (
        "import sys, music_feedback.quality as q; "
        "q.Unique(('a', 'b')); q.validate; "
        "assert 'great_expectations' not in sys.modules, 'GX imported'; "
        "assert 'pandas' not in sys.modules, 'pandas imported'"
    )
    run_python(code)


@pytest.mark.integration
def test_does_not_steal_callers_current_gx_context():
    code = (
        "import great_expectations as gx, polars as pl\n"
        "from great_expectations.data_context.data_context.context_factory import project_manager\n"
        "from music_feedback.quality import NotNull, validate\n"
        "theirs = gx.get_context(mode='ephemeral')\n"
        "assert validate(pl.DataFrame({'a': [1]}), 's', [NotNull('a')]).success\n"
        "assert project_manager.get_current_project() is theirs\n"
    )
    run_python(code)


@pytest.mark.integration
def test_a_gx_worker_judges_as_this_process_does(good):
    """The CLI's batch judges suites in a worker process: same outcomes, GX never imported here (checked
    in a fresh interpreter), and a dead worker falls back to judging here."""
    run_python("""
import sys
import polars as pl
from music_feedback.quality import gx_worker, validate, Between, NotNull, RowCountBetween, Unique, InSet
df = pl.DataFrame({"a": [1, 2, None, 2], "b": [0.1, 0.5, 2.0, 0.7], "m": ["US", "GB", "XX", "US"]})
suite = [NotNull("a"), Between("b", 0, 1), Unique(("a",)), InSet("m", ["US", "GB"]), RowCountBetween(5, None),
         NotNull("missing")]
gx_worker.start()
remote = validate(df, "t.remote", suite)
assert "great_expectations" not in sys.modules
gx_worker.current().proc.kill()
gx_worker.current().proc.wait()
after_death = validate(df, "t.after", suite)
assert gx_worker.current() is None and "great_expectations" in sys.modules
local = validate(df, "t.local", suite)
shape = lambda r: [(o.expectation, o.success, o.unexpected_count, o.observed_value, o.error) for o in r.results]
assert shape(remote) == shape(local) == shape(after_death), (shape(remote), shape(local))
assert [o.success for o in remote.results] == [False, False, False, False, False, False]
""")


def test_a_module_the_worker_defers_runs_on_first_use_and_is_the_real_one():
    """The worker defers GX's scipy.stats and altair imports; a deferred module is imported, for real, when
    an attribute is first read (shown on a small module nothing else imports)."""
    run_python("""
import sys
from music_feedback.quality.gx_worker import _defer
_defer(["colorsys"])
import colorsys
from colorsys import rgb_to_hsv as early
assert type(sys.modules["colorsys"]).__name__ == "module" and early(1, 0, 0) == (0.0, 1.0, 1)
_defer(["wave"])
import wave as w
assert type(sys.modules["wave"]).__name__ == "_ImportedOnFirstUse"
assert w.WAVE_FORMAT_PCM == 1 and sys.modules["wave"] is not w and sys.modules["wave"].Wave_read
""")
