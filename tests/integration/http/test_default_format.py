"""prompt.responseFormat: a request that sends no response_format is answered in the profile's
schema, on every API (chat, completions, gRPC); a request's own format still wins."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from sentiric_inference.client import AsyncLlamaClient, GenerationOptions

from tests.integration.http.conftest import client_for
from tests.support.server import ServerHandle, running_server

pytestmark = pytest.mark.model

MODEL = "tiny-json"
# Every string and count bounded, so even random weights close the object within max_tokens.
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "color": {"type": "string", "enum": ["red", "green", "blue"]},
        "ok": {"type": "boolean"},
        # A free string: the tiny model's random tokens once put a raw \x04 into it, which
        # strict JSON refuses (serving/grammar.py now keeps control characters out).
        "word": {"type": "string", "minLength": 1, "maxLength": 6},
    },
    "required": ["color", "ok", "word"],
    "additionalProperties": False,
}
MAX_TOKENS = 400


@pytest.fixture(scope="module")
def json_server(tiny_model_path: Path) -> Iterator[ServerHandle]:
    with running_server(
        tiny_model_path,
        parallel=2,
        context_size=1024,
        extra_config={
            "model": {"alias": MODEL},
            "sampling": {"maxTokens": MAX_TOKENS, "temperature": 0.0},
            "prompt": {"responseFormat": SCHEMA},
        },
    ) as handle:
        yield handle


def _matches(text: str, schema: dict[str, Any] = SCHEMA) -> dict[str, Any]:
    value = json.loads(text)
    jsonschema.validate(value, schema)
    assert isinstance(value, dict)
    return value


def test_chat_without_response_format_gets_the_profile_schema(json_server: ServerHandle) -> None:
    for prompt in ("Say anything.", "Another one, please.", "x"):
        reply = client_for(json_server).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": prompt}], max_tokens=MAX_TOKENS
        )
        choice = reply.choices[0]
        assert choice.finish_reason == "stop", choice.message.content
        _matches(choice.message.content or "")


def test_streamed_chat_and_completions_get_it_too(json_server: ServerHandle) -> None:
    client = client_for(json_server)
    stream = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Stream it."}], stream=True
    )
    _matches("".join(c.choices[0].delta.content or "" for c in stream if c.choices))
    completion = client.completions.create(model=MODEL, prompt="Once upon a time")
    assert completion.choices[0].finish_reason == "stop"
    _matches(completion.choices[0].text)


async def test_grpc_without_response_format_gets_it(json_server: ServerHandle) -> None:
    async with AsyncLlamaClient(json_server.grpc_target) as client:
        result = await client.generate(
            "Hello over gRPC.", options=GenerationOptions(max_new_tokens=MAX_TOKENS), timeout=120
        )
    assert result.finish.reason == "stop"
    _matches(result.text)


def test_a_requests_own_format_wins(json_server: ServerHandle) -> None:
    own = {
        "type": "object",
        "properties": {"other": {"type": "boolean"}},
        "required": ["other"],
        "additionalProperties": False,
    }
    reply = client_for(json_server).chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Mine."}],
        response_format={"type": "json_schema", "json_schema": {"name": "own", "schema": own}},
    )
    assert _matches(reply.choices[0].message.content or "", own).keys() == {"other"}
    # {"type": "text"} opts out: the tiny model's free text is no object of the schema.
    free = client_for(json_server).chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Free."}],
        response_format={"type": "text"},
        max_tokens=40,
    )
    assert free.choices[0].finish_reason == "length"
    assert free.usage is not None and free.usage.completion_tokens == 40


def test_models_reports_the_default_schema(json_server: ServerHandle) -> None:
    card = httpx.get(f"{json_server.http_url}/v1/models", timeout=10).json()["data"][0]
    assert card["response_format"] == SCHEMA
    assert card["sampling"]["max_tokens"] == MAX_TOKENS


def test_a_bad_default_stops_serve_with_the_key_named(tiny_model_path: Path) -> None:
    bad = {"type": "object", "properties": {"a": {"type": "string", "maxLength": 100000}}}
    with running_server(
        tiny_model_path, extra_config={"prompt": {"responseFormat": bad}}, wait=False
    ) as handle:
        assert handle.process.wait(timeout=60) != 0
        log = handle.log_text()
    assert "responseFormat" in log and "maxSchemaRepetition" in log, log[-2000:]
