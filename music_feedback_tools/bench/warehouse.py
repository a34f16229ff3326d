"""The bench's warehouse at a scale, kept in that scale's home and reused while its spec (sizes, seed) holds:
a 20x warehouse takes minutes to draw. It is drawn by `music-feedback warehouse seed` in a child process
(with its progress bar), so its memory stays out of the bench's process and off the measured batch."""
from __future__ import annotations

import subprocess
import sys
import time

from music_feedback import settings
from music_feedback.warehouse.duckdb_warehouse import DuckDBWarehouse
from music_feedback.warehouse.generator import WarehouseSpec

# What makes two warehouses the same day; the end date moves with the calendar and the batch reads the
# warehouse's own (runner.latest_complete_day), so an older one still serves.
KEY = ("listeners", "tracks", "plays_per_day", "days", "seed", "outcomes")


def ensure(spec: WarehouseSpec, scale: float) -> tuple[dict, float]:
    """(the warehouse's metadata, seconds spent finding or drawing it)."""
    path = settings.warehouse_path()
    started = time.perf_counter()
    meta = DuckDBWarehouse(path=str(path)).meta() if path.exists() else {}
    if any(meta.get(k) != str(getattr(spec, k)) for k in KEY):
        print(f"generating the {scale:g}x warehouse at {path} (not counted; about 10 s a scale unit)",
              file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "music_feedback.cli", "warehouse", "seed", "--path", str(path),
                        "--scale", f"{scale:g}", "--outcomes", str(spec.outcomes), "--seed", str(spec.seed),
                        "--days", str(spec.days), "--force"], check=True)
        meta = DuckDBWarehouse(path=str(path)).meta()
    return meta, time.perf_counter() - started
