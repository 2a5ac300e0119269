"""Servers for the HTTP tests: real `sentiric-llm serve` processes on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.support.server import ServerHandle, running_server

TINY = "tiny"
SMOL = "smollm2"
MAX_TOKENS = 256


@pytest.fixture(scope="session")
def tiny_server(tiny_model_path: Path) -> Iterator[ServerHandle]:
    """The tiny random-weight model: structure, counts and determinism, not words."""
    with running_server(
        tiny_model_path,
        parallel=4,
        context_size=1024,
        extra_config={"model": {"alias": TINY}, "sampling": {"maxTokens": MAX_TOKENS}},
    ) as handle:
        yield handle


@pytest.fixture(scope="session")
def smol_server(smollm2_path: Path) -> Iterator[ServerHandle]:
    """SmolLM2-135M-Instruct: real text, for JSON output and end-to-end checks."""
    with running_server(
        smollm2_path,
        parallel=4,
        context_size=1024,
        extra_config={"model": {"alias": SMOL}, "sampling": {"maxTokens": MAX_TOKENS}},
    ) as handle:
        yield handle


def client_for(server: ServerHandle) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=server.openai_base_url, api_key="unused", max_retries=0, timeout=120
    )


def async_client_for(server: ServerHandle) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=server.openai_base_url, api_key="unused", max_retries=0, timeout=120
    )
