"""Link-signing keys as configured: JSON {"kid": "secret", ...} (MUSIC_FEEDBACK_LINK_KEYS, or the AWS secret),
parsed and checked, with the key id that signs new links."""
from __future__ import annotations

import json
import os

KEYS_VAR = "MUSIC_FEEDBACK_LINK_KEYS"  # JSON {"kid": "secret", ...}
ACTIVE_VAR = "MUSIC_FEEDBACK_LINK_KEY_ID"
MIN_SECRET = 16


def check_keys(keys: dict[str, bytes], active: str, origin: str = KEYS_VAR) -> None:
    """ValueError naming `origin` (the variable or the secret the keys came from) unless the keys can sign."""
    if not keys:
        raise ValueError(f"{origin}: no key: it must hold at least one key id and its secret")
    if active not in keys:
        raise ValueError(f"{ACTIVE_VAR}={active!r} is not one of the keys in {origin} ({sorted(keys)})")
    for kid, secret in keys.items():
        if not kid.isalnum():
            raise ValueError(f"{origin}: key id {kid!r} must be letters and digits only")
        if len(secret) < MIN_SECRET:
            raise ValueError(f"{origin}: the secret of key {kid!r} must be at least {MIN_SECRET} characters")


def parse_keys(raw: str, origin: str = KEYS_VAR) -> tuple[dict[str, bytes], str]:
    """Keys and the active key id from JSON {"kid": "secret", ...}: MUSIC_FEEDBACK_LINK_KEY_ID, else the last
    key id in sorted order (rotation: add a later kid)."""
    try:
        keys = json.loads(raw)
        assert isinstance(keys, dict) and all(isinstance(v, str) for v in keys.values())
    except (ValueError, AssertionError):
        raise ValueError(f'{origin} must be a JSON object {{"kid": "secret", ...}}') from None
    if not keys:
        raise ValueError(f"{origin}: no key: it must hold at least one key id and its secret")
    encoded = {k: v.encode() for k, v in keys.items()}
    active = os.environ.get(ACTIVE_VAR) or sorted(keys)[-1]
    check_keys(encoded, active, origin)
    return encoded, active
