"""The IO manager port: polars frames as Parquet, other objects (models) as joblib, one object per asset
partition under `<asset key path>/<partition>.<suffix>` (unpartitioned: `<asset key path>.<suffix>`), in a
local folder or on S3 under the same keys. Subclasses only store and fetch bytes by key."""
from __future__ import annotations

from typing import Callable, Iterable

import joblib
import polars as pl
from dagster import ConfigurableIOManager, InputContext, OutputContext

from music_feedback.io.chunks import FrameChunks

SUFFIXES = ("parquet", "joblib")


def _write(obj, target) -> None:
    if isinstance(obj, pl.DataFrame):
        obj.write_parquet(target, compression="lz4", statistics=False)
    elif isinstance(obj, FrameChunks):
        obj.write(target)
    else:
        joblib.dump(obj, target)


class ParquetIOManager(ConfigurableIOManager):
    # --- what an adapter provides
    def _store(self, key: str, write: Callable[[object], None]) -> None:
        """Write the object at `key` whole (a reader sees the old object or the new one)."""
        raise NotImplementedError

    def _exists(self, key: str) -> bool:
        raise NotImplementedError

    def _open(self, key: str):
        """A path or a binary file object polars and joblib can read."""
        raise NotImplementedError

    def _delete(self, key: str) -> None:
        raise NotImplementedError

    def _list(self, prefix: str) -> Iterable[str]:
        """Keys under a folder-like prefix ending in '/'."""
        raise NotImplementedError

    def where(self, key: str) -> str:
        """The key as a person finds it: a path or an s3:// URI."""
        raise NotImplementedError

    # --- shared
    @staticmethod
    def key_of(asset_path: list[str], partition: str | None, suffix: str) -> str:
        base = "/".join(asset_path)
        return f"{base}/{partition}.{suffix}" if partition is not None else f"{base}.{suffix}"

    def _key(self, context: InputContext | OutputContext, suffix: str) -> str:
        part = context.asset_partition_key if context.has_asset_partitions else None
        return self.key_of(list(context.asset_key.path), part, suffix)

    def handle_output(self, context: OutputContext, obj) -> None:
        if obj is None:
            return
        suffix = "parquet" if isinstance(obj, (pl.DataFrame, FrameChunks)) else "joblib"
        key = self._key(context, suffix)
        self._store(key, lambda target: _write(obj, target))
        other = self._key(context, "joblib" if suffix == "parquet" else "parquet")
        if self._exists(other):
            self._delete(other)  # an older object of the other kind must not shadow this one
        extra = obj.metadata() if isinstance(obj, FrameChunks) else {}
        context.add_output_metadata({"path": self.where(key), **extra})

    def load_input(self, context: InputContext):
        # An input annotated pl.LazyFrame gets a scan: the asset reads only the columns and rows it needs.
        lazy = getattr(context.dagster_type, "typing_type", None) is pl.LazyFrame
        for suffix in SUFFIXES:
            key = self._key(context, suffix)
            if self._exists(key):
                if suffix == "joblib":
                    return joblib.load(self._open(key))
                return self._scan(key) if lazy else pl.read_parquet(self._open(key))
        name = "/".join(context.asset_key.path)
        part = f" partition {context.asset_partition_key}" if context.has_asset_partitions else ""
        hint = ("train the models with `music-feedback run --retrain` (or materialize the models group)"
                if not context.has_asset_partitions else "materialize it first")
        raise FileNotFoundError(f"asset {name}{part} has not been materialized yet (no object at "
                                f"{self.where(self._key(context, 'parquet'))} or .joblib): {hint}")

    def _scan(self, key: str) -> pl.LazyFrame:
        """A lazy scan of the Parquet object: only the columns and row groups the query needs are read."""
        source = self._open(key)
        return pl.scan_parquet(source) if isinstance(source, str) else pl.read_parquet(source).lazy()

    def partitions(self, asset_path: list[str]) -> list[str]:
        """The partition keys of an asset's stored frames, sorted."""
        prefix = "/".join(asset_path) + "/"
        return sorted(k[len(prefix):-len(".parquet")] for k in self._list(prefix) if k.endswith(".parquet"))

    def scan(self, asset_path: list[str], partition: str | None) -> pl.LazyFrame:
        """A lazy scan of a stored frame (FileNotFoundError naming where it looked if there is none)."""
        key = self.key_of(asset_path, partition, "parquet")
        if not self._exists(key):
            part = f" partition {partition}" if partition is not None else ""
            raise FileNotFoundError(f"asset {'/'.join(asset_path)}{part} has no frame at {self.where(key)}: "
                                    "materialize it first")
        return self._scan(key)

    def read_frame(self, asset_path: list[str], partition: str, columns: list[str] | None = None) -> pl.DataFrame:
        scan = self.scan(asset_path, partition)
        return (scan.select(columns) if columns is not None else scan).collect()
