"""Where the project keeps its data, and which adapter set it runs on."""
from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "MUSIC_FEEDBACK_ENV"
HOME_VAR = "MUSIC_FEEDBACK_HOME"
PROGRAMS_DIR_VAR = "MUSIC_FEEDBACK_PROGRAMS_DIR"
PROGRAM_VAR = "MUSIC_FEEDBACK_PROGRAM"
WAREHOUSE_VAR = "MUSIC_FEEDBACK_WAREHOUSE"
CANDIDATE_STORE_VAR = "MUSIC_FEEDBACK_CANDIDATE_STORE"


def get_env() -> str:
    """`local` (embedded adapters, the default) or `aws`."""
    env = os.environ.get(ENV_VAR, "local").strip().lower()
    if env not in ("local", "aws"):
        raise ValueError(f"{ENV_VAR}={env!r} is not supported: set it to 'local' or 'aws'")
    return env


def data_home() -> Path:
    """Root of everything the embedded adapters write (warehouse, lake, store, Dagster home)."""
    return Path(os.environ.get(HOME_VAR, Path.cwd() / "data")).resolve()


def warehouse_path() -> Path:
    return Path(os.environ.get(WAREHOUSE_VAR, data_home() / "warehouse.duckdb")).resolve()


def warehouse_configured() -> bool:
    """True when the warehouse path was given, not defaulted: only the default may be generated."""
    return bool(os.environ.get(WAREHOUSE_VAR))


def duckdb_stage_settings() -> dict:
    """The embedded warehouse's memory limit and spill folder for the batch's stages, when set."""
    out = {"spill_dir": os.environ.get("MUSIC_FEEDBACK_DUCKDB_SPILL_DIR") or str(data_home() / "duckdb_spill")}
    if os.environ.get("MUSIC_FEEDBACK_DUCKDB_MEMORY_LIMIT"):
        out["memory_limit"] = os.environ["MUSIC_FEEDBACK_DUCKDB_MEMORY_LIMIT"]
    return out


def io_root() -> Path:
    return data_home() / "assets"


def store_path() -> Path:
    return data_home() / "candidates.sqlite"


def score_cache_path() -> Path:
    return data_home() / "score_cache"


def candidate_store_kind() -> str:
    """`sqlite` (the embedded default) or `dynamodb`."""
    kind = os.environ.get(CANDIDATE_STORE_VAR, "sqlite").strip().lower()
    if kind not in ("sqlite", "dynamodb"):
        raise ValueError(f"{CANDIDATE_STORE_VAR}={kind!r} is not supported: set it to 'sqlite' or 'dynamodb'")
    return kind


def feedback_store_path() -> Path:
    return data_home() / "feedback.sqlite"


def outbox_dir() -> Path:
    """The local Maildir the email channel writes to when no SMTP server is configured."""
    return data_home() / "outbox"


BATCH_CHUNK_ROWS_VAR = "MUSIC_FEEDBACK_BATCH_CHUNK_ROWS"
DEFAULT_BATCH_CHUNK_ROWS = 200_000  # the 1x day (~198K kept) in one chunk; 20x within 1.5x of its memory


def batch_chunk_rows() -> int:
    """Rows the batch's later stages (features, scoring, the store) hold at a time: candidates per chunk, and
    ids per chunk (and id span per warehouse read) in the feature hydration. Memory grows with it, not with
    the day; a day within one chunk runs as one piece. MUSIC_FEEDBACK_BATCH_CHUNK_ROWS, default 200000."""
    raw = os.environ.get(BATCH_CHUNK_ROWS_VAR, "").strip()
    try:
        rows = int(raw) if raw else DEFAULT_BATCH_CHUNK_ROWS
    except ValueError:
        raise ValueError(f"{BATCH_CHUNK_ROWS_VAR}={raw!r} is not a whole number of rows") from None
    if rows < 1:
        raise ValueError(f"{BATCH_CHUNK_ROWS_VAR}={raw!r}: a chunk holds at least one row")
    return rows
