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
