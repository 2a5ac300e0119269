"""Chat and text completions through the official openai client, streaming and not."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from openai.types import CompletionUsage

from tests.integration.http.conftest import MAX_TOKENS, SMOL, TINY, client_for
from tests.support.server import ServerHandle

pytestmark = pytest.mark.model


def counts(usage: CompletionUsage | None) -> tuple[int, int, int]:
    assert usage is not None
    return usage.prompt_tokens, usage.completion_tokens, usage.total_tokens


MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Name three colours."},
]


def test_models_lists_the_served_model(tiny_server: ServerHandle) -> None:
    models = client_for(tiny_server).models.list()
    assert [m.id for m in models.data] == [TINY]
    assert models.data[0].model_extra is not None
    assert models.data[0].model_extra["max_tokens"] == MAX_TOKENS


def test_chat_non_streaming_reports_usage(tiny_server: ServerHandle) -> None:
    reply = client_for(tiny_server).chat.completions.create(
        model=TINY,
        messages=MESSAGES,
        max_tokens=12,
        temperature=0,
        seed=1,
    )
    choice = reply.choices[0]
    assert reply.object == "chat.completion"
    assert choice.message.role == "assistant"
    assert choice.finish_reason in ("stop", "length")
    assert reply.usage is not None
    assert 0 < reply.usage.completion_tokens <= 12
    assert reply.usage.prompt_tokens > 10
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    if choice.finish_reason == "length":
        assert reply.usage.completion_tokens == 12


def test_streaming_matches_non_streaming_and_counts_usage(tiny_server: ServerHandle) -> None:
    client = client_for(tiny_server)
    whole = client.chat.completions.create(
        model=TINY,
        messages=MESSAGES,
        max_tokens=20,
        temperature=0,
    )
    chunks = list(
        client.chat.completions.create(
            model=TINY,
            messages=MESSAGES,
            max_tokens=20,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finishes = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    usage_chunks = [c for c in chunks if c.usage is not None]
    assert text == whole.choices[0].message.content
    assert finishes == [whole.choices[0].finish_reason]
    assert len(usage_chunks) == 1 and usage_chunks[0] is chunks[-1] and not chunks[-1].choices
    # cached_tokens may differ: the second request reuses the first one's prompt cache.
    assert counts(usage_chunks[0].usage) == counts(whole.usage)
    assert len({c.id for c in chunks}) == 1


def test_streaming_without_include_usage_sends_no_usage(tiny_server: ServerHandle) -> None:
    chunks = list(
        client_for(tiny_server).chat.completions.create(
            model=TINY,
            messages=MESSAGES,
            max_tokens=5,
            stream=True,
        )
    )
    assert all(c.usage is None for c in chunks)
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")


def test_text_completion_streaming_and_not(tiny_server: ServerHandle) -> None:
    client = client_for(tiny_server)
    whole = client.completions.create(
        model=TINY, prompt="Once upon a time", max_tokens=10, temperature=0
    )
    assert whole.object == "text_completion"
    assert whole.usage is not None and 0 < whole.usage.completion_tokens <= 10
    chunks = list(
        client.completions.create(
            model=TINY,
            prompt="Once upon a time",
            max_tokens=10,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].text for c in chunks if c.choices) == whole.choices[0].text
    assert counts(chunks[-1].usage) == counts(whole.usage)


def test_max_tokens_ends_with_length(smol_server: ServerHandle) -> None:
    reply = client_for(smol_server).chat.completions.create(
        model=SMOL,
        max_tokens=3,
        temperature=0,
        messages=[{"role": "user", "content": "Write a long story about a dragon."}],
    )
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage is not None and reply.usage.completion_tokens == 3


def test_real_model_answers_in_words(smol_server: ServerHandle) -> None:
    reply = client_for(smol_server).chat.completions.create(
        model=SMOL,
        max_tokens=40,
        temperature=0,
        messages=[{"role": "user", "content": "What color is the sky?"}],
    )
    assert "blue" in (reply.choices[0].message.content or "")


def test_stop_sequence_is_honoured_and_not_emitted(smol_server: ServerHandle) -> None:
    reply = client_for(smol_server).chat.completions.create(
        model=SMOL,
        max_tokens=60,
        temperature=0,
        stop=["blue"],
        messages=[{"role": "user", "content": "What color is the sky?"}],
    )
    assert reply.choices[0].finish_reason == "stop"
    content = reply.choices[0].message.content or ""
    assert "blue" not in content
    assert content.startswith("The sky is")


def test_request_id_is_echoed_and_logged(tiny_server: ServerHandle) -> None:
    response = httpx.post(
        f"{tiny_server.openai_base_url}/chat/completions",
        headers={"x-request-id": "test-req-123"},
        json={"model": TINY, "messages": MESSAGES, "max_tokens": 2},
        timeout=60,
    )
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "test-req-123"
    generated = httpx.get(f"{tiny_server.http_url}/health", timeout=10).headers["x-request-id"]
    assert len(generated) == 32
    # The access line is written just after the body is sent: poll briefly for it.
    deadline = time.monotonic() + 10
    while True:
        lines = [
            json.loads(line) for line in tiny_server.log_text().splitlines() if line.startswith("{")
        ]
        mine = [line for line in lines if line.get("request_id") == "test-req-123"]
        if {"sentiric_inference.http.access", "sentiric_inference.serving.service"} <= {
            line["logger"] for line in mine
        }:
            break
        assert time.monotonic() < deadline, f"request id missing from the JSON log: {mine}"
        time.sleep(0.05)
    summary = next(line for line in mine if line["logger"] == "sentiric_inference.serving.service")
    assert summary["api"] == "http_chat" and summary["outcome"] in ("stop", "length")
    assert summary["completion_tokens"] == response.json()["usage"]["completion_tokens"]
    # Prompts are not logged by default.
    assert "Name three colours" not in tiny_server.log_text()
