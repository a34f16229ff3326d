"""The measured holdout: a fixed share of listeners who are never asked, chosen by a keyed hash of the
listener id, so every run and every worker picks the same ones, and nobody can steer into it."""
from __future__ import annotations

import hashlib
import hmac

import polars as pl

from music_feedback.programs.model import Program


def _unit(key: bytes, listener_id: int) -> float:
    mac = hmac.new(key, str(int(listener_id)).encode(), hashlib.sha256).digest()
    return int.from_bytes(mac[:8], "big") / 2**64


def holdout_key(program: Program) -> bytes:
    return f"{program.program_id}:{program.holdout.salt}".encode()


def is_held_out(program: Program, listener_id: int) -> bool:
    return _unit(holdout_key(program), listener_id) < program.holdout.share


def held_out(program: Program, listener_ids: pl.Series) -> pl.Series:
    """A boolean per listener id (in order)."""
    key, share = holdout_key(program), program.holdout.share
    unique = listener_ids.unique()
    chosen = {lid for lid in unique.to_list() if _unit(key, lid) < share}
    return listener_ids.is_in(list(chosen))
