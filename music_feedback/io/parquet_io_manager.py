"""Parquet between assets (polars frames), joblib for model artefacts; one file per partition.

Writes go to a temporary file renamed into place, so a failed run never leaves half a partition.
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path

import joblib
import polars as pl
from dagster import ConfigurableIOManager, InputContext, OutputContext


class LocalParquetIOManager(ConfigurableIOManager):
    base_dir: str

    def _path(self, context: InputContext | OutputContext, suffix: str) -> Path:
        root = Path(self.base_dir, *context.asset_key.path)
        if context.has_asset_partitions:
            return root / f"{context.asset_partition_key}.{suffix}"
        return root.with_name(root.name + f".{suffix}")

    def handle_output(self, context: OutputContext, obj) -> None:
        if obj is None:
            return
        is_frame = isinstance(obj, pl.DataFrame)
        path = self._path(context, "parquet" if is_frame else "joblib")
        path.parent.mkdir(parents=True, exist_ok=True)
        # Unique per write: two runs writing the same asset must never rename each other's file.
        tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex}.tmp")
        try:
            if is_frame:
                obj.write_parquet(tmp, compression="lz4", statistics=False)
            else:
                joblib.dump(obj, tmp)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        context.add_output_metadata({"path": str(path)})

    def artifact_path(self, asset_path: list[str], suffix: str = "joblib") -> Path:
        """Where an unpartitioned asset's artifact lives (e.g. a trained model)."""
        root = Path(self.base_dir, *asset_path)
        return root.with_name(root.name + f".{suffix}")

    def load_input(self, context: InputContext):
        # An input annotated pl.LazyFrame gets a scan: the asset reads only the columns and rows it needs.
        lazy = getattr(context.dagster_type, "typing_type", None) is pl.LazyFrame
        for suffix, load in (("parquet", pl.scan_parquet if lazy else pl.read_parquet), ("joblib", joblib.load)):
            path = self._path(context, suffix)
            if path.exists():
                return load(path)
        key = "/".join(context.asset_key.path)
        part = f" partition {context.asset_partition_key}" if context.has_asset_partitions else ""
        hint = ("train the models with `music-feedback run --retrain` (or materialize the models group)"
                if not context.has_asset_partitions else "materialize it first")
        raise FileNotFoundError(f"asset {key}{part} has not been materialized yet (no file at "
                                f"{self._path(context, 'parquet')} or .joblib): {hint}")
