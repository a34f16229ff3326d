"""An item's size as DynamoDB counts it against the 400 KB item limit
(https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html): each
attribute's name in UTF-8 bytes plus its value: a string its UTF-8 bytes, binary its bytes, a number
(significant digits + 1) / 2 rounded up, plus 1; boolean and null 1; a list or map 3 bytes plus 1 per
element plus its elements (a map's keys count as names); sets the sum of their members."""
from __future__ import annotations

import base64
import math

ITEM_LIMIT = 400 * 1024


def _number(text: str) -> int:
    digits = text.lstrip("-").lower().split("e")[0].replace(".", "").strip("0") or "0"
    return math.ceil(len(digits) / 2) + 1


def _binary(value) -> int:
    return len(value) if isinstance(value, (bytes, bytearray)) else len(base64.b64decode(value))


def value_size(av: dict) -> int:
    (kind, v), = av.items()
    if kind == "S":
        return len(v.encode())
    if kind == "N":
        return _number(v)
    if kind == "B":
        return _binary(v)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(s.encode()) for s in v)
    if kind == "NS":
        return sum(_number(n) for n in v)
    if kind == "BS":
        return sum(_binary(b) for b in v)
    if kind == "L":
        return 3 + sum(1 + value_size(x) for x in v)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + value_size(x) for k, x in v.items())
    raise ValueError(f"unknown DynamoDB attribute type {kind!r}")


def item_size(item: dict) -> int:
    """Bytes of a low-level item ({name: {type: value}}) as DynamoDB counts them."""
    return sum(len(name.encode()) + value_size(av) for name, av in item.items())
