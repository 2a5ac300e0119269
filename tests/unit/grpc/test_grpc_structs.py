"""google.protobuf.Struct -> Python: integral numbers are ints, NaN/Infinity refused by path."""

from __future__ import annotations

import math

import pytest
from google.protobuf.struct_pb2 import Struct
from sentiric_inference.errors import InvalidRequestError
from sentiric_inference.grpc_api.structs import struct_to_dict


def struct(values: dict[str, object]) -> Struct:
    out = Struct()
    out.update(values)
    return out


def test_integral_numbers_come_back_as_ints_and_others_unchanged() -> None:
    values = struct(
        {
            "schema": {"type": "string", "maxLength": 10, "items": [1, 2.5, True, None, "x"]},
            "big": 2.0**60,
        }
    )
    out = struct_to_dict(values, "p")
    assert out["schema"]["maxLength"] == 10 and isinstance(out["schema"]["maxLength"], int)
    assert out["schema"]["items"] == [1, 2.5, True, None, "x"]
    assert isinstance(out["schema"]["items"][2], bool)
    assert isinstance(out["big"], float)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_are_refused_naming_their_path(bad: float) -> None:
    values = struct({"response_format": {"json_schema": {"schema": {"maximum": 1}}}})
    values["response_format"]["json_schema"]["schema"]["maximum"] = bad
    with pytest.raises(InvalidRequestError) as info:
        struct_to_dict(values, "engine_specific_params")
    assert info.value.param == "engine_specific_params.response_format.json_schema.schema.maximum"
