"""Item keys and attribute encoding.

Base table: PK `L#<listener>#P#<program>` (the seed's ListenerId:Program), SK `B#<date>#T#<track>#C#<channel>`.
GSI1 (the channel query): the seed's Program:Channel key would put a day's 200K writes on one partition,
so its partition key adds marketplace, batch date and a crc32 shard of the listener; its sort key
`<inverted score>#<listener>#<track>` sorts ascending in channel order (score desc, listener, track),
the score inverted through its IEEE-754 bits, which order positive doubles exactly.
GSI2 (the seed's Program:TrackId:Date): `P#<program>#T#<track>` / `B#<date>#L#<listener>#C#<channel>`.
A registry item per batch (`P#<program>` / `BATCH#<date>`) lists its partitions and per-track counts.
"""
from __future__ import annotations

import struct
import zlib
from decimal import Decimal

from music_feedback.store.base import PageKey

MAX_BITS = 0xFFFFFFFFFFFFFFFF


def shard(listener_id: int, shards: int) -> int:
    return zlib.crc32(str(listener_id).encode()) % shards


def inverted(score: float) -> str:
    bits = struct.unpack(">Q", struct.pack(">d", float(score) + 0.0))[0]  # +0.0: -0.0 becomes 0.0
    return f"{MAX_BITS - bits:016x}"


def gsi1_sk(score: float, listener_id: int, track_id: int) -> str:
    return f"{inverted(score)}#{listener_id:020d}#{track_id:020d}"


def gsi1_pk(program_id: str, channel: str, marketplace: str, batch_date: str, shard_no: int) -> str:
    return f"P#{program_id}#C#{channel}#M#{marketplace}#B#{batch_date}#S#{shard_no:02d}"


def pk(listener_id: int, program_id: str) -> str:
    return f"L#{listener_id}#P#{program_id}"


def sk(batch_date: str, track_id: int, channel: str) -> str:
    return f"B#{batch_date}#T#{track_id:020d}#C#{channel}"


def gsi2_pk(program_id: str, track_id: int) -> str:
    return f"P#{program_id}#T#{track_id}"


def gsi2_sk(batch_date: str, listener_id: int, channel: str) -> str:
    return f"B#{batch_date}#L#{listener_id:020d}#C#{channel}"


def registry_pk(program_id: str) -> str:
    return f"P#{program_id}"


def number(value) -> dict:
    """A DynamoDB number from an int or float: floats pass through Decimal(repr) so they round-trip exactly."""
    if value is None:
        return {"NULL": True}
    if isinstance(value, float):
        return {"N": str(Decimal(repr(value)))}
    return {"N": str(int(value))}


def text(value) -> dict:
    return {"NULL": True} if value is None else {"S": value}


FLOATS = {"score", "propensity_score", "affinity_score"}


def decode(name: str, av: dict):
    """An attribute back to Python: DynamoDB normalises numbers (1.0 comes back as 1), so the column
    decides float or int."""
    (kind, value), = av.items()
    if kind == "N":
        return float(Decimal(value)) if name in FLOATS else int(value)
    if kind == "NULL":
        return None
    return value


def after_sk(key: PageKey) -> str:
    return gsi1_sk(key[0], key[1], key[2])
