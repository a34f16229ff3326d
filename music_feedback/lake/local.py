"""The lake in a local folder. A day is written to a staging folder beside it and swapped in with two
renames, so a reader finds the old day or the new one; a crash leaves only a `_staging` folder, which
hive readers skip (names starting with `_`)."""
from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import polars as pl
from pydantic import Field

from music_feedback.lake.port import PART, Lake, LakeError


class LocalLake(Lake):
    root: str = Field(description='Folder of the local lake (MUSIC_FEEDBACK_HOME/lake).')

    def _day(self, table: str, run_date: str) -> Path:
        return Path(self.root) / table / f"run_date={run_date}"

    def replace_day(self, table: str, run_date: str, parts: dict[str, pl.DataFrame]) -> list[str]:
        final = self._day(table, run_date)
        tag = uuid.uuid4().hex[:12]
        stage = final.parent / "_staging" / f"{final.name}.{tag}"
        try:
            for market, frame in parts.items():
                folder = stage / f"marketplace={market}"
                folder.mkdir(parents=True, exist_ok=True)
                frame.write_parquet(folder / PART, compression="zstd")
            stage.mkdir(parents=True, exist_ok=True)  # an empty day is a day too
            trash = final.parent / "_staging" / f"{final.name}.{tag}.old"
            if final.exists():
                os.rename(final, trash)
            os.rename(stage, final)
        except OSError as exc:
            shutil.rmtree(stage, ignore_errors=True)
            raise LakeError(f"cannot write {table} for {run_date} in the lake folder {Path(self.root)}: "
                            f"{exc.strerror or exc}; make the folder writable (or point MUSIC_FEEDBACK_HOME "
                            "elsewhere); the previous export of the day is unchanged") from None
        shutil.rmtree(trash, ignore_errors=True)
        return [str(final / f"marketplace={m}" / PART) for m in parts]

    def read_day(self, table: str, run_date: str) -> pl.DataFrame:
        day = self._day(table, run_date)
        files = sorted(day.glob(f"marketplace=*/{PART}"))
        if not files:
            return pl.DataFrame()
        return pl.concat([pl.read_parquet(f).with_columns(pl.lit(f.parent.name.split("=", 1)[1]).alias("marketplace"))
                          for f in files], how="diagonal_relaxed")

    def describe(self) -> str:
        return f"local lake {self.root}"
