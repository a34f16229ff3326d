"""KeyIndex.attach returns exactly the left join's frame, on the gather path and on each fallback."""
import polars as pl
import pytest

from music_feedback.transforms.lookup import KeyIndex

pytestmark = pytest.mark.unit


def _join(frame, table, key, columns):
    right = table.select(key, *(pl.col(c).alias(n) for n, c in columns.items()))
    return frame.join(right, on=key, how="left", maintain_order="left")


FRAME = pl.DataFrame({"listener_id": [5, 1, 9, None, 3, 5, -2, 10_000, -(2**63), 2**63 - 1], "x": range(10)})

TABLES = {
    "dense": pl.DataFrame({"listener_id": [3, 1, 5, 9, 4], "score": [0.3, 0.1, None, 0.9, 0.4],
                           "name": ["c", "a", "e", "i", "d"]}),
    "negative keys": pl.DataFrame({"listener_id": [-2, 5, 0], "score": [1.0, 2.0, 3.0], "name": ["m", "n", "o"]}),
    "sparse": pl.DataFrame({"listener_id": [1, 10**12], "score": [1.0, 2.0], "name": ["a", "z"]}),
    "repeated key": pl.DataFrame({"listener_id": [5, 5, 1], "score": [1.0, 2.0, 3.0], "name": ["p", "q", "r"]}),
    "null key": pl.DataFrame({"listener_id": [5, None], "score": [1.0, 2.0], "name": ["s", "t"]}),
    "empty": pl.DataFrame(schema={"listener_id": pl.Int64, "score": pl.Float64, "name": pl.String}),
}


@pytest.mark.parametrize("case", sorted(TABLES))
def test_attach_equals_the_left_join(case):
    table = TABLES[case]
    columns = {"score": "score", "label": "name"}
    got = KeyIndex(table, "listener_id").attach(FRAME, columns)
    assert got.equals(_join(FRAME, table, "listener_id", columns))


def test_only_dense_unique_integer_keys_take_the_gather():
    assert KeyIndex(TABLES["dense"], "listener_id").rows is not None
    for case in ("sparse", "repeated key", "null key", "empty"):
        assert KeyIndex(TABLES[case], "listener_id").rows is None, case
    text = pl.DataFrame({"k": ["a", "b"], "v": [1, 2]})
    assert KeyIndex(text, "k").rows is None
    assert KeyIndex(text, "k").attach(pl.DataFrame({"k": ["b", "c"]}), ["v"])["v"].to_list() == [2, None]


def test_a_list_of_columns_keeps_their_names():
    got = KeyIndex(TABLES["dense"], "listener_id").attach(FRAME, ["score"])
    assert got.columns == ["listener_id", "x", "score"]
    assert got["score"].to_list() == [None, 0.1, 0.9, None, 0.3, None, None, None, None, None]
