"""The warehouse's side of the batch: a session in which the extract, the unify and the filter chain run as
SQL where the data lives. Only what later stages compute in Python leaves it, chunk by chunk; the rest
(the day's plays, the unified pairs, every removal and its reason) is written by the warehouse itself."""
from __future__ import annotations

from typing import Sequence

import polars as pl

from music_feedback.io.chunks import FrameChunks


class StageSession:
    """One connection's worth of stage work. Names given to `upload` and `create` live for the session."""
    # Listeners the unify and the chain take in one pass (warehouse_stages.listener_passes); None: all.
    listeners_per_pass: int | None = None

    def upload(self, name: str, frame: pl.DataFrame) -> None:
        """A table of data the warehouse does not hold (the program's own ledger), for this session."""
        raise NotImplementedError

    def create(self, name: str, sql: str) -> None:
        """A table of `sql`'s rows for this session: what several outputs read is computed once."""
        raise NotImplementedError

    def fetch(self, sql: str) -> pl.DataFrame:
        """A small result (counts, statistics): never a stage's rows."""
        raise NotImplementedError

    def output(self, sql: str, asset_path: Sequence[str], partition: str) -> FrameChunks:
        """`sql`'s rows as a stage's output for the IO manager, written while the session is open."""
        raise NotImplementedError

    def stored(self, asset_path: Sequence[str], partition: str, location: str) -> str:
        """A relation (SQL) reading a stage's stored output; `location` is where the IO manager keeps it."""
        raise NotImplementedError
