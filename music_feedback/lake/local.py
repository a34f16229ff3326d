"""The lake in a local folder. The folder tree is the catalogue: `table/run_date=D/` names the day.

A day is written whole into a staging folder outside every table (`<root>/_staging/<table>/…`, so no glob of a
table ever reaches it, and a crash leaves it there unread), then exchanged with the day's folder in one
atomic rename (renameat2 RENAME_EXCHANGE; where the system lacks it, two renames); the old day, now in
staging, is deleted after. A reader opens the day's folder once and reads every file relative to that open
folder, so all its files come from one day; if that day is deleted under it, it reads the new one."""
from __future__ import annotations

import ctypes
import errno
import os
import shutil
import time
import uuid
from pathlib import Path

import polars as pl
from pydantic import Field

from music_feedback.lake.port import PART, Lake, LakeError

STAGING = "_staging"
READ_ATTEMPTS = 30
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2); False where the system cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


class LocalLake(Lake):
    root: str = Field(description='Folder of the local lake (MUSIC_FEEDBACK_HOME/lake).')

    def _day(self, table: str, run_date: str) -> Path:
        return Path(self.root) / table / f"run_date={run_date}"

    def replace_day(self, table: str, run_date: str, parts: dict[str, pl.DataFrame]) -> list[str]:
        final = self._day(table, run_date)
        stage = Path(self.root) / STAGING / table / f"{final.name}.{uuid.uuid4().hex[:12]}"
        try:
            for market, frame in parts.items():
                folder = stage / f"marketplace={market}"
                folder.mkdir(parents=True, exist_ok=True)
                frame.write_parquet(folder / PART, compression="zstd")
            stage.mkdir(parents=True, exist_ok=True)  # an empty day is a day too
            final.parent.mkdir(parents=True, exist_ok=True)
            if not final.exists():
                os.rename(stage, final)
            elif not _exchange(stage, final):
                trash = stage.with_name(stage.name + ".old")
                os.rename(final, trash)
                os.rename(stage, final)
                stage = trash
        except OSError as exc:
            shutil.rmtree(stage, ignore_errors=True)
            raise LakeError(f"cannot write {table} for {run_date} in the lake folder {Path(self.root)}: "
                            f"{exc.strerror or exc}; make the folder writable (or point MUSIC_FEEDBACK_HOME "
                            "elsewhere); the previous export of the day is unchanged") from None
        shutil.rmtree(stage, ignore_errors=True)  # the old day, swapped out
        return [str(final / f"marketplace={m}" / PART) for m in parts]

    def read_day(self, table: str, run_date: str) -> pl.DataFrame:
        day = self._day(table, run_date)
        for _ in range(READ_ATTEMPTS):
            try:
                fd = os.open(day, os.O_RDONLY | os.O_DIRECTORY)
            except FileNotFoundError:
                return pl.DataFrame()
            try:
                frames = []
                markets = sorted(e.name for e in os.scandir(fd) if e.name.startswith("marketplace="))
                for name in markets:
                    part = os.open(f"{name}/{PART}", os.O_RDONLY, dir_fd=fd)
                    with os.fdopen(part, "rb") as f:
                        frames.append(pl.read_parquet(f).with_columns(pl.lit(name.split("=", 1)[1]).alias("marketplace")))
                if os.stat(day).st_ino != os.fstat(fd).st_ino:
                    continue  # swapped out while we read it: some of its files may be gone already
                return pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()
            except FileNotFoundError:
                time.sleep(0.01)  # the day was replaced and its old folder deleted while we read it
            finally:
                os.close(fd)
        raise LakeError(f"{table} for {run_date} kept changing in {self.root} while being read")

    def describe(self) -> str:
        return f"local lake {self.root}"
