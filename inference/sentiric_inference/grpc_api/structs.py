"""`google.protobuf.Struct` to plain Python values, as JSON would have given them.

A Struct carries every number as a double, so `maxLength: 10` arrives as 10.0, which the
schema-to-grammar converter cannot use: integral doubles become ints here (as they were
written). A Struct may also hold NaN or Infinity, which JSON cannot; protobuf's own
MessageToDict raised a bare ValueError for them (the client saw UNKNOWN). Here both end
as InvalidRequestError naming the path of the bad value.
"""

from __future__ import annotations

import math
from typing import Any

from google.protobuf import struct_pb2

from sentiric_inference.errors import InvalidRequestError

# Beyond 2**53 a double no longer holds every integer, so larger ones stay floats.
_EXACT_INT = 2**53
# Protobuf itself refuses messages nested deeper than 100 levels while parsing them.
MAX_DEPTH = 100


def struct_to_dict(struct: struct_pb2.Struct, param: str) -> dict[str, Any]:
    """The Struct's fields; raises InvalidRequestError naming `param.<path>` for bad numbers."""
    return {key: _value(value, f"{param}.{key}", 1) for key, value in struct.fields.items()}


def _value(value: struct_pb2.Value, path: str, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise InvalidRequestError(f"'{path}' nests deeper than {MAX_DEPTH} levels.", param=path)
    kind = value.WhichOneof("kind")
    if kind == "number_value":
        return _number(value.number_value, path)
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "struct_value":
        return {
            key: _value(item, f"{path}.{key}", depth + 1)
            for key, item in value.struct_value.fields.items()
        }
    if kind == "list_value":
        return [
            _value(item, f"{path}[{index}]", depth + 1)
            for index, item in enumerate(value.list_value.values)
        ]
    return None  # null_value, or a Value with no kind set


def _number(number: float, path: str) -> int | float:
    if not math.isfinite(number):
        raise InvalidRequestError(
            f"Invalid '{path}': {number!r} is not a number JSON can carry.", param=path
        )
    if number.is_integer() and abs(number) <= _EXACT_INT:
        return int(number)
    return number
