"""Hostile gRPC input: raw bytes, Struct abuse, extremes of every field (conftest.Prober)."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator
from typing import Any

import pytest
from google.protobuf.struct_pb2 import Struct
from sentiric_inference.grpc_api.gen import llama_pb2

from tests.integration.hostile.conftest import MAX_BODY, Prober
from tests.support.hostile import REFUSED, SERVED

pytestmark = pytest.mark.model


def request(user_prompt: str = "hi", **params: Any) -> llama_pb2.GenerateStreamRequest:
    engine = params.pop("engine", None)
    message = llama_pb2.GenerateStreamRequest(user_prompt=user_prompt)
    message.params.max_new_tokens = params.pop("max_new_tokens", 2)
    for key, value in params.items():
        if key == "stop_sequences":
            message.params.stop_sequences.extend(value)
        else:
            setattr(message.params, key, value)
    if engine is not None:
        struct = Struct()
        struct.update(engine)
        message.params.engine_specific_params.CopyFrom(struct)
    return message


def schema_format(schema: Any) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"schema": schema}}


def replies(raw: list[bytes]) -> list[llama_pb2.GenerateStreamResponse]:
    return [llama_pb2.GenerateStreamResponse.FromString(r) for r in raw]


def field_bytes(number: int, wire_type: int, payload: bytes) -> bytes:
    """One protobuf field, hand-encoded (for bytes a real client library would not send)."""
    key = _varint((number << 3) | wire_type)
    if wire_type == 2:
        return key + _varint(len(payload)) + payload
    return key + payload


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def test_schema_with_integer_keywords_through_struct_is_served_as_json(probe: Prober) -> None:
    # 5. Struct carries maxLength as 10.0; every such schema used to be refused.
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string", "maxLength": 10}},
        "required": ["name"],
    }
    data = request(
        "json please",
        max_new_tokens=48,
        temperature=0.0,
        engine={"response_format": schema_format(schema)},
    ).SerializeToString()
    out = replies(probe.grpc_case("Struct integer keywords", data, expect=SERVED))
    text = b"".join(r.token for r in out if r.HasField("token")).decode()
    finish = out[-1].finish_details.finish_reason
    if finish == "stop":
        # strict=False: the converter's string rule lets raw control characters through,
        # which the tiny model's noise then produces.
        assert len(json.loads(text, strict=False)["name"]) <= 10
    else:
        assert finish == "length" and text.lstrip().startswith("{")


def test_pattern_with_a_huge_quantifier_is_refused(probe: Prober) -> None:
    # 1. crashed the process through engine_specific_params.
    data = request(
        engine={"response_format": schema_format({"type": "string", "pattern": "^a{0,20000}$"})}
    ).SerializeToString()
    probe.grpc_case("pattern a{0,20000} via gRPC", data, expect=REFUSED)


def test_a_huge_role_is_refused_with_bounded_details(probe: Prober) -> None:
    # 7. a 1 MB role became a 1 MB log line and overflowed the trailer.
    message = request()
    message.history.add(role="r" * 900_000, content="x")
    probe.grpc_case("900 KB role", message.SerializeToString(), expect=REFUSED)


def test_a_message_above_the_limit_is_resource_exhausted(probe: Prober) -> None:
    data = request("x" * (MAX_BODY + 10)).SerializeToString()
    probe.grpc_case("message above maxBodyBytes", data, expect=REFUSED)


# -- raw bytes: garbage, invalid UTF-8, wrong wire types --------------------------------------


def raw_cases() -> Iterator[tuple[str, bytes, str | None]]:
    rng = random.Random(12)
    for size in (1, 7, 64, 1024, 65536):
        yield f"{size} random bytes", rng.randbytes(size), None
    valid = request().SerializeToString()
    for cut in (1, 3, len(valid) // 2, len(valid) - 1):
        yield f"valid message cut at {cut}", valid[:cut], None
    yield "invalid UTF-8 user_prompt", field_bytes(2, 2, b"\xff\xfe\xfd"), REFUSED
    yield "invalid UTF-8 system_prompt", field_bytes(1, 2, b"ok\xc3") + valid, REFUSED
    yield "invalid UTF-8 history role", field_bytes(4, 2, field_bytes(1, 2, b"\x80")), REFUSED
    yield "user_prompt as a varint", field_bytes(2, 0, b"\x05"), REFUSED
    # A known field with the wrong wire type is kept as an unknown field, so this one has
    # no user_prompt.
    yield "params as a fixed64", field_bytes(5, 1, b"\x00" * 8), REFUSED
    yield "length beyond the message", b"\x12\xff\xff\x03hi", REFUSED
    yield "unknown field 99 is ignored", valid + field_bytes(99, 2, b"x"), SERVED
    yield "empty message", b"", REFUSED
    deep = b""
    for _ in range(150):  # Struct nested past protobuf's own limit of 100
        deep = field_bytes(
            1, 2, field_bytes(1, 2, b"k") + field_bytes(2, 2, field_bytes(5, 2, deep))
        )
    yield "Struct nested 150 deep", field_bytes(5, 2, field_bytes(20, 2, deep)), REFUSED


RAW_CASES = list(raw_cases())


@pytest.mark.parametrize(("case", "data", "expect"), RAW_CASES, ids=[c[0] for c in RAW_CASES])
def test_raw_bytes(probe: Prober, case: str, data: bytes, expect: str | None) -> None:
    probe.grpc_case(case, data, expect=expect)


# -- the generated corpus ---------------------------------------------------------------------

INT32_VALUES = [0, -1, 1, 2**31 - 1, -(2**31)]
INT64_VALUES = [0, -1, 2**63 - 1, -(2**63)]
FLOAT_VALUES = [0.0, -0.0, -1.0, 1e38, -1e38, math.nan, math.inf, -math.inf, 1e-45]
STRINGS = ["", " ", "x" * 100_000, "<|im_end|>", "\x00", "\u202e"]
STRUCT_VALUES: list[Any] = [
    None,
    "text",
    True,
    math.nan,
    math.inf,
    -math.inf,
    1e308,
    -1,
    [],
    [1, "a"],
    {},
    {"type": "json_object"},
]


def corpus() -> Iterator[tuple[str, bytes]]:
    for value in INT32_VALUES:
        yield f"max_new_tokens={value}", request(max_new_tokens=value).SerializeToString()
        yield f"top_k={value}", request(top_k=value).SerializeToString()
    for value in INT64_VALUES:
        yield f"seed={value}", request(seed=value).SerializeToString()
    for field in ("temperature", "top_p", "repetition_penalty"):
        for number in FLOAT_VALUES:
            yield f"{field}={number}", request(**{field: number}).SerializeToString()
    for text in STRINGS:
        label = repr(text[:12])
        yield (
            f"user_prompt={label}",
            request(text or "x", stop_sequences=[text]).SerializeToString(),
        )
        for field in ("system_prompt", "rag_context", "lora_adapter_id"):
            message = request()
            setattr(message, field, text)
            yield f"{field}={label}", message.SerializeToString()
        message = request()
        message.history.add(role=text, content=text)
        yield f"history role/content={label}", message.SerializeToString()
    message = request()
    for _ in range(20_000):
        message.history.add(role="user", content="a")
    yield "20,000 history turns", message.SerializeToString()
    yield "1000 stop sequences", request(stop_sequences=["s"] * 1000).SerializeToString()
    for key in ("min_p", "frequency_penalty", "presence_penalty", "response_format", "nope"):
        for value in STRUCT_VALUES:
            label = f"engine_specific_params.{key}={value!r}"
            yield label, request(engine={key: value}).SerializeToString()
    for schema in (
        {"type": "string", "maxLength": 1e9},
        {"type": "string", "minLength": -1},
        {"type": "array", "minItems": 2_000_000},
        {"type": 7},
        {"$ref": "https://example.com/schema.json"},
        {"$ref": "#/definitions/missing"},
        {"properties": {"a": {"$ref": "#"}}},
        {"type": "string", "pattern": "(" * 100 + ")" * 100},
        {"type": "string", "pattern": "[unclosed"},
        {"type": "string", "format": "date-time"},
    ):
        label = f"schema {json.dumps(schema)[:60]}"
        yield label, request(engine={"response_format": schema_format(schema)}).SerializeToString()


CORPUS = list(corpus())


def test_generated_corpus(probe: Prober) -> None:
    assert len(CORPUS) > 100
    for case, data in CORPUS:
        probe.grpc_case(case, data)
