"""Hostile HTTP input against a real server: the issue's cases, then a generated corpus.

Each case must end refused clearly (4xx, OpenAI's error body, `param` naming the field) or
served; after each, the process is alive, /health answered within 1 s throughout, RSS is
bounded and a normal request succeeds (conftest.Prober).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.hostile.conftest import MAX_BODY, MODEL, Prober
from tests.support.hostile import REFUSED, SERVED, chat_body

pytestmark = pytest.mark.model

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"


def schema_format(schema: Any) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}


def nested_schema(depth: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(depth):
        schema = {"type": "array", "items": schema}
    return schema


# (case, body, field the refusal must name, expected outcome or None for either)
ISSUE_CASES: list[tuple[str, Any, str | None, str | None]] = [
    # 1. one request crashed the process (deep grammar, SIGSEGV).
    (
        "maxLength 20000",
        chat_body(MODEL, response_format=schema_format({"type": "string", "maxLength": 20000})),
        "response_format",
        REFUSED,
    ),
    (
        "pattern a{0,20000}",
        chat_body(
            MODEL, response_format=schema_format({"type": "string", "pattern": "^a{0,20000}$"})
        ),
        "response_format",
        REFUSED,
    ),
    (
        "maxLength at the bound is served",
        chat_body(MODEL, response_format=schema_format({"type": "string", "maxLength": 1000})),
        None,
        SERVED,
    ),
    # 5. wrong answers to bad input.
    (
        "lone surrogate in content",
        b'{"model": "hostile", "max_tokens": 2, "messages": [{"role": "user", "content": "\\ud800"}]}',
        "messages[0].content",
        REFUSED,
    ),
    (
        "lone surrogate in a schema",
        b'{"model": "hostile", "max_tokens": 2, "messages": [{"role": "user", "content": "x"}],'
        b' "response_format": {"type": "json_schema", "json_schema": {"name": "x",'
        b' "schema": {"const": "\\udfff"}}}}',
        "response_format",
        REFUSED,
    ),
    (
        "schema nested 100 deep",
        chat_body(MODEL, response_format=schema_format(nested_schema(100))),
        "response_format",
        REFUSED,
    ),
    (
        "top_k 4294967297",
        chat_body(MODEL, top_k=4294967297),
        "top_k",
        REFUSED,
    ),
    (
        "stop with a lone surrogate",
        b'{"model": "hostile", "max_tokens": 2, "messages": [{"role": "user", "content": "x"}],'
        b' "stop": ["\\ud800"]}',
        "stop",
        REFUSED,
    ),
    # 7. refusals echoing huge values.
    (
        "1 MB unknown field name",
        chat_body(MODEL, **{"k" * 900_000: 1}),
        "k",
        REFUSED,
    ),
    (
        "huge model name",
        chat_body("m" * 900_000),
        None,
        REFUSED,
    ),
]


@pytest.mark.parametrize(
    ("case", "body", "field", "expect"), ISSUE_CASES, ids=[c[0] for c in ISSUE_CASES]
)
def test_issue_cases(
    probe: Prober, case: str, body: Any, field: str | None, expect: str | None
) -> None:
    response = probe.http_case(case, body, field=field, expect=expect)
    assert response is not None
    if expect == REFUSED:
        assert len(response.content) < 4000, "a refusal echoed the hostile value"


def test_memory_schemas_with_huge_counts_are_refused_and_rss_stays_flat(probe: Prober) -> None:
    # 2. 15 small requests with minItems 2,000,000+ grew RSS by ~1 GB.
    for i in range(15):
        schema = {"type": "array", "items": {"type": "integer"}, "minItems": 2_000_000 + i}
        probe.http_case(
            f"minItems {2_000_000 + i}",
            chat_body(MODEL, response_format=schema_format(schema)),
            field="response_format",
            expect=REFUSED,
        )
    # Distinct schemas at the bounds fill the grammar cache; memory stays bounded
    # (check_unharmed after each).
    for i in range(70):
        schema = {
            "type": "object",
            "properties": {f"p{j}": {"type": "string", "maxLength": 1000} for j in range(8)},
            "required": [f"p{i % 8}"],
            "description": f"variant {i}",
        }
        probe.http_case(
            f"bounded schema variant {i}",
            chat_body(MODEL, response_format=schema_format(schema)),
            field="response_format",
        )


@pytest.mark.parametrize("size", [64 * 1024, 512 * 1024, MAX_BODY - 4096, MAX_BODY + 1])
def test_bodies_of_growing_size(probe: Prober, size: int) -> None:
    # 3. a 10 MB prompt froze the event loop for 12 s.
    filler = "word " * (size // 5)
    body = chat_body(MODEL, messages=[{"role": "user", "content": filler[: max(size - 200, 1)]}])
    probe.http_case(f"body of {size} bytes", body, field="messages", expect=REFUSED)


def test_ten_megabyte_body_is_refused_unread(probe: Prober) -> None:
    body = chat_body(MODEL, messages=[{"role": "user", "content": "x" * 10_000_000}])
    response = probe.http_case("10 MB body", body, field=None, expect=REFUSED)
    assert response is not None and response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"


def test_thirty_megabyte_chunked_body_is_cut_off(probe: Prober) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"model": "hostile", "messages": [{"role": "user", "content": "'
        for _ in range(30):
            yield b"x" * 1_000_000
        yield b'"}]}'

    response = probe.http.post(CHAT, content=chunks(), headers={"content-type": "application/json"})
    outcome = REFUSED if response.status_code == 413 else f"status {response.status_code}"
    probe._record("30 MB chunked body", outcome, response.text[:200], REFUSED)


@pytest.mark.parametrize("depth", [5, 16, 31, 32, 40, 100, 1000, 10_000])
def test_schemas_of_growing_depth(probe: Prober, depth: int) -> None:
    # Built as text: the test's own json.dumps would recurse too deeply.
    schema = '{"type": "array", "items": ' * depth + '{"type": "string"}' + "}" * depth
    marker = "__SCHEMA__"
    body = _dumps(chat_body(MODEL, response_format=schema_format(marker)))
    body = body.replace(f'"{marker}"'.encode(), schema.encode())
    # The innermost object sits at depth + 1; maxSchemaDepth is 32.
    expect = SERVED if depth + 1 <= 32 else REFUSED
    # Past the JSON parser's own nesting limit the body is refused as JSON, naming no field.
    field = "response_format" if depth <= 100 else None
    probe.http_case(f"schema depth {depth}", body, field=field, expect=expect)


@pytest.mark.parametrize("properties", [10, 200, 300, 5000, 20_000])
def test_schemas_of_growing_size(probe: Prober, properties: int) -> None:
    # 760 KB of schema stalled the loop for 4.9 s; here it is refused (size or count).
    schema = {
        "type": "object",
        "properties": {f"property_{i}": {"type": "integer"} for i in range(properties)},
    }
    body = chat_body(MODEL, response_format=schema_format(schema))
    expect = SERVED if properties <= 200 else REFUSED
    field = "response_format" if len(str(body)) < MAX_BODY else None
    probe.http_case(f"schema with {properties} properties", body, field=field, expect=expect)


# -- the generated corpus: every field x wrong type, null, extremes, NaN/Infinity, huge --------

SCALARS: list[tuple[str, Any]] = [
    ("null", None),
    ("string", "text"),
    ("empty string", ""),
    ("zero", 0),
    ("minus one", -1),
    ("int32 max+1", 2**31),
    ("int64 max+1", 2**63),
    ("uint64 max+2", 2**64 + 1),
    ("huge negative", -(2**70)),
    ("1e308", 1e308),
    ("-1e308", -1e308),
    ("NaN", math.nan),
    ("Infinity", math.inf),
    ("-Infinity", -math.inf),
    ("true", True),
    ("empty list", []),
    ("list of ints", [1, 2]),
    ("empty object", {}),
    ("object", {"a": 1}),
    ("100 KB string", "x" * 100_000),
    ("10k-element list", ["x"] * 10_000),
]
# JSON nesting deeper than the JSON parser accepts, built without recursion.
DEEP_JSON = b"[" * 300 + b"]" * 300

CHAT_FIELDS = [
    "model",
    "messages",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "repeat_penalty",
    "presence_penalty",
    "frequency_penalty",
    "seed",
    "stop",
    "stream",
    "stream_options",
    "response_format",
    "rag_context",
    "n",
    "logit_bias",
    "user",
    "logprobs",
    "tools",
    "metadata",
]
MESSAGE_FIELDS = ["role", "content", "name"]
COMPLETION_FIELDS = ["prompt", "max_tokens", "temperature", "echo", "suffix", "best_of"]


def corpus() -> Iterator[tuple[str, bytes, str, str]]:
    """(case, body bytes, field a refusal must name, path)."""
    for field in CHAT_FIELDS:
        for name, value in SCALARS:
            yield f"chat {field}={name}", _with(chat_body(MODEL), field, value), field, CHAT
        # Deeper than the JSON parser goes: refused as a body, naming no field.
        yield f"chat {field}=deep", _deep(chat_body(MODEL), field), "", CHAT
    for field in MESSAGE_FIELDS:
        for name, value in SCALARS:
            body = chat_body(MODEL)
            message: dict[str, Any] = {"role": "user", "content": "hi", field: value}
            body["messages"] = [message]
            yield f"message {field}={name}", _dumps(body), "messages[0]", CHAT
    for field in COMPLETION_FIELDS:
        for name, value in SCALARS:
            body = {"model": MODEL, "prompt": "hi", "max_tokens": 2}
            yield f"completion {field}={name}", _with(body, field, value), field, COMPLETIONS


# Routes added after the chat corpus: each field x the same values, plus nested options.
EMBEDDINGS = "/v1/embeddings"
EMBEDDING_FIELDS = ["model", "input", "encoding_format", "dimensions", "user"]
OLLAMA_BODIES: dict[str, dict[str, Any]] = {
    "/api/chat": {
        "model": MODEL,
        "messages": [{"role": "user", "content": "hi"}],
        "stream": False,
        "options": {"num_predict": 2},
    },
    "/api/generate": {
        "model": MODEL,
        "prompt": "hi",
        "stream": False,
        "options": {"num_predict": 2},
    },
    "/api/embed": {"model": MODEL, "input": "hi"},
    "/api/embeddings": {"model": MODEL, "prompt": "hi"},
    "/api/show": {"model": MODEL},
}
OLLAMA_FIELDS = {
    "/api/chat": ["model", "messages", "format", "options", "stream", "keep_alive", "tools"],
    "/api/generate": [
        "model",
        "prompt",
        "system",
        "format",
        "options",
        "stream",
        "raw",
        "suffix",
        "context",
    ],
    "/api/embed": ["model", "input", "truncate", "options", "keep_alive"],
    "/api/embeddings": ["model", "prompt"],
    "/api/show": ["model"],
}
OLLAMA_OPTIONS = ["temperature", "top_p", "top_k", "num_predict", "seed", "stop", "num_ctx"]


def new_route_corpus() -> Iterator[tuple[str, bytes, str, str]]:
    """(case, body bytes, field a refusal must name, path) for embeddings and the Ollama API."""
    for field in EMBEDDING_FIELDS:
        body = {"model": MODEL, "input": "hi"}
        for name, value in SCALARS:
            yield f"embeddings {field}={name}", _with(body, field, value), field, EMBEDDINGS
        yield f"embeddings {field}=deep", _deep(body, field), "", EMBEDDINGS
    for path, fields in OLLAMA_FIELDS.items():
        base = OLLAMA_BODIES[path]
        for field in fields:
            for name, value in SCALARS:
                yield f"{path} {field}={name}", _with(base, field, value), field, path
            yield f"{path} {field}=deep", _deep(base, field), "", path
    for option in OLLAMA_OPTIONS:
        for name, value in SCALARS:
            body = {**OLLAMA_BODIES["/api/chat"], "options": {"num_predict": 2, option: value}}
            yield f"/api/chat options.{option}={name}", _dumps(body), option, "/api/chat"


def _with(body: dict[str, Any], field: str, value: Any) -> bytes:
    return _dumps({**body, field: value})


def _deep(body: dict[str, Any], field: str) -> bytes:
    marker = "__DEEP__"
    return _dumps({**body, field: marker}).replace(f'"{marker}"'.encode(), DEEP_JSON)


def _dumps(body: Any) -> bytes:
    import json

    return json.dumps(body, allow_nan=True).encode()


CORPUS = list(corpus())


def test_generated_corpus(probe: Prober) -> None:
    assert len(CORPUS) > 500
    for case, body, field, path in CORPUS:
        probe.http_case(case, body, field=field or None, path=path)


NEW_ROUTE_CORPUS = list(new_route_corpus())


def test_generated_corpus_of_embeddings_and_the_ollama_api(probe: Prober) -> None:
    assert len(NEW_ROUTE_CORPUS) > 500
    for case, body, field, path in NEW_ROUTE_CORPUS:
        probe.http_case(case, body, field=field or None, path=path)
