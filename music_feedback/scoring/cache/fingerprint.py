"""A 64-bit fingerprint of each row's feature values, part of the score cache's key.

A model's score is a function of its version and the row's feature values, so a cached score may be reused
only where both match: a re-run of an old day then scores with that day's features, never with a later
day's. The hash is our own (splitmix64 over the values' bits), not polars' `hash`, whose output may change
between polars releases: the cache outlives a process and DynamoDB's is shared by every deployment.
"""
from __future__ import annotations

import hashlib

import numpy as np
import polars as pl

from music_feedback.scoring.features import CATEGORICAL

COLUMN = "feature_fingerprint"
_NULL = np.uint64(0x6E756C6C_6E756C6C)  # a null is its own value, not 0 or NaN
_GOLDEN, _M1, _M2 = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9),
                     np.uint64(0x94D049BB133111EB))


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser (uint64 arithmetic wraps)."""
    x = x + _GOLDEN
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


def _text_hash(value: str) -> int:
    return int.from_bytes(hashlib.blake2b(value.encode(), digest_size=8).digest(), "little")


def _bits(column: pl.Series) -> np.ndarray:
    """The values as the models read them (text for categorical features, else float64), as uint64."""
    textual = column.dtype == pl.String or isinstance(column.dtype, (pl.Categorical, pl.Enum))
    if column.name in CATEGORICAL or textual:
        text = column.cast(pl.String)
        codes = {v: _text_hash(v) for v in text.drop_nulls().unique().to_list()}  # a few genres, not per row
        out = text.replace_strict(codes, default=None, return_dtype=pl.UInt64) if codes else \
            pl.Series(column.name, [None] * len(text), dtype=pl.UInt64)
        return out.fill_null(int(_NULL)).to_numpy().astype(np.uint64, copy=False)
    values = column.cast(pl.Float64)
    raw = (values.fill_null(0.0).to_numpy() + 0.0).astype(np.float64, copy=False)  # + 0.0: -0.0 hashes as 0.0
    return np.where(values.is_null().to_numpy(), _NULL, raw.view(np.uint64))


def feature_fingerprint(frame: pl.DataFrame, columns: list[str]) -> pl.Series:
    """One UInt64 per row over `columns` (in name order, so the order they are listed in does not matter)."""
    names = sorted(set(columns))
    h = np.full(frame.height, _mix(np.array([len(names)], dtype=np.uint64))[0], dtype=np.uint64)
    for name in names:
        salt = np.uint64(_text_hash(name))
        h = _mix(h ^ _mix(_bits(frame[name]) ^ salt))
    return pl.Series(COLUMN, h, dtype=pl.UInt64)
