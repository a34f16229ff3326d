"""Python values to DynamoDB attribute values and back: floats as Decimal (boto3 refuses float), numbers
back as int when whole, None as absent."""
from __future__ import annotations

from decimal import Decimal

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

_to, _from = TypeSerializer(), TypeDeserializer()


BOUND = Decimal("9.9E+125")  # DynamoDB's largest number: an open bound (`until=inf`) becomes it


def _decimal(v):
    if isinstance(v, float):
        if v != v:
            raise ValueError("NaN cannot be stored in DynamoDB")
        if v in (float("inf"), float("-inf")):
            return BOUND if v > 0 else -BOUND
        return Decimal(repr(v))
    return v


def item(values: dict) -> dict:
    return {k: _to.serialize(_decimal(v)) for k, v in values.items() if v is not None}


def value(v) -> dict:
    return _to.serialize(_decimal(v))


def plain(raw: dict) -> dict:
    out = {}
    for k, v in raw.items():
        x = _from.deserialize(v)
        if isinstance(x, Decimal):
            x = int(x) if x == x.to_integral_value() and "." not in str(x) and "E" not in str(x) else float(x)
        out[k] = x
    return out
