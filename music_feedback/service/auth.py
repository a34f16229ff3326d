"""Service-to-service API keys: `Authorization: Bearer <key>`.

Keys are configured in MUSIC_FEEDBACK_API_KEYS (JSON) or a secrets file named by
MUSIC_FEEDBACK_API_KEYS_FILE (JSON or YAML): a list of {name, key | sha256, programs}. Only the
SHA-256 of a key is kept in memory (keys are long random tokens, so a fast hash is enough), and a
presented key is compared against every stored digest in constant time.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import yaml

KEYS_VAR = "MUSIC_FEEDBACK_API_KEYS"
KEYS_FILE_VAR = "MUSIC_FEEDBACK_API_KEYS_FILE"
ALL_PROGRAMS = "*"


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def new_key() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class ApiKey:
    name: str
    sha256: bytes = field(repr=False)
    programs: frozenset[str]

    def may_read(self, program_id: str) -> bool:
        return ALL_PROGRAMS in self.programs or program_id in self.programs


@dataclass(frozen=True)
class ApiKeyRing:
    keys: tuple[ApiKey, ...] = ()

    def authenticate(self, presented: str | None) -> ApiKey | None:
        """The key whose digest matches; every digest is compared, so timing says nothing."""
        if not presented:
            return None
        probe, found = digest(presented), None
        for key in self.keys:
            if hmac.compare_digest(probe, key.sha256):
                found = key
        return found

    @classmethod
    def parse(cls, entries: object, source: str) -> "ApiKeyRing":
        if not isinstance(entries, list):
            raise ValueError(f"{source}: API keys must be a list of {{name, key | sha256, programs}}")
        keys = []
        for i, e in enumerate(entries):
            where = f"{source}[{i}]"
            if not isinstance(e, dict) or not isinstance(e.get("name"), str) or not e["name"]:
                raise ValueError(f"{where}: each API key needs a non-empty 'name'")
            programs = e.get("programs")
            if not isinstance(programs, list) or not programs or not all(isinstance(p, str) for p in programs):
                raise ValueError(f"{where} ({e['name']}): 'programs' must be a non-empty list of program ids "
                                 f"or ['{ALL_PROGRAMS}']")
            if isinstance(e.get("key"), str) and len(e["key"]) >= 16:
                sha = digest(e["key"])
            elif isinstance(e.get("sha256"), str):
                try:
                    sha = bytes.fromhex(e["sha256"])
                except ValueError:
                    sha = b""
                if len(sha) != 32:
                    raise ValueError(f"{where} ({e['name']}): 'sha256' must be 64 hex digits")
            else:
                raise ValueError(f"{where} ({e['name']}): give 'key' (at least 16 characters) or 'sha256'")
            unknown = set(e) - {"name", "key", "sha256", "programs"}
            if unknown:
                raise ValueError(f"{where} ({e['name']}): unknown field(s) {sorted(unknown)}")
            keys.append(ApiKey(e["name"], sha, frozenset(programs)))
        return cls(tuple(keys))

    @classmethod
    def from_env(cls) -> "ApiKeyRing":
        ring = cls()
        raw = os.environ.get(KEYS_VAR)
        if raw:
            try:
                ring = ring + cls.parse(json.loads(raw), KEYS_VAR)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{KEYS_VAR} is not valid JSON: {exc}") from None
        path = os.environ.get(KEYS_FILE_VAR)
        if path:
            p = Path(path)
            if not p.is_file():
                raise ValueError(f"{KEYS_FILE_VAR}={path}: no such file")
            try:
                ring = ring + cls.parse(yaml.safe_load(p.read_text()), str(p))
            except yaml.YAMLError as exc:
                raise ValueError(f"{p}: not valid YAML or JSON: {exc}") from None
        return ring

    def __add__(self, other: "ApiKeyRing") -> "ApiKeyRing":
        return ApiKeyRing(self.keys + other.keys)
