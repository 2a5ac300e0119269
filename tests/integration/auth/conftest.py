"""Servers with API keys for the auth tests: real `sentiric-llm serve` processes on 127.0.0.1."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.server import ServerHandle, running_server

TINY = "tiny"
# name -> key; every test takes keys of its own, so per-key limits never cross tests.
KEYS = {
    "billing": "billing-5f1c0f7e0b9d4a8c9e3b",
    "search": "search-1a2b3c4d5e6f7a8b9c0d",
    "rotated": "rotated-9f8e7d6c5b4a39281706",
    "rpm": "rpm-0011223344556677889900",
    "rpm-other": "rpm-other-aabbccddeeff00112233",
    "tpm": "tpm-4455667788990011223344",
    "grpc-rpm": "grpc-rpm-99887766554433221100",
    "burst": "burst-a1b2c3d4e5f6a7b8c9d0",
    "calm": "calm-0f0e0d0c0b0a09080706",
    "ollama-rpm": "ollama-rpm-6e5d4c3b2a1908f7e6d5",
    "embed-rpm": "embed-rpm-13579bdf2468ace01357",
}
BARE_KEY = "bare-key-without-a-name-0123456789"
# The limited server's per-key limits.
REQUESTS_PER_MINUTE = 3
TOKENS_PER_MINUTE = 200


def write_keys(path: Path, names: list[str], *, bare: bool = False) -> None:
    lines = ["# test keys", ""] + [f"{name}:{KEYS[name]}" for name in names]
    if bare:
        lines.append(BARE_KEY)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)  # a new inode, as a Secret update gives


def openai_client(server: ServerHandle, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.openai_base_url, api_key=key, max_retries=0, timeout=120)


def metric(server: ServerHandle, name: str, **labels: str) -> float:
    """One sample's value from the server's /metrics (0 when absent)."""
    text = httpx.get(server.metrics_url, timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def wait_for(predicate: Any, timeout: float = 15.0) -> None:
    """Poll `predicate` every 0.1 s until true; AssertionError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "api-keys"
    names = ["billing", "search", "rpm", "rpm-other", "tpm", "grpc-rpm", "ollama-rpm", "embed-rpm"]
    write_keys(path, names, bare=True)
    return path


@pytest.fixture(scope="module")
def auth_server(tiny_model_path: Path, key_file: Path) -> Iterator[ServerHandle]:
    """Keys from `serve --api-key-file`, no per-key limits."""
    with running_server(
        tiny_model_path,
        parallel=2,
        context_size=1024,
        extra_config={"model": {"alias": TINY}, "sampling": {"maxTokens": 64}},
        args=["--api-key-file", str(key_file)],
    ) as handle:
        yield handle


@pytest.fixture(scope="module")
def limited_server(tiny_model_path: Path, key_file: Path) -> Iterator[ServerHandle]:
    """Keys and per-key limits from engine.yaml's server.auth."""
    auth = {
        "apiKeysFile": str(key_file),
        "perKey": {
            "requestsPerMinute": REQUESTS_PER_MINUTE,
            "tokensPerMinute": TOKENS_PER_MINUTE,
        },
    }
    with running_server(
        tiny_model_path,
        parallel=2,
        context_size=2048,
        extra_config={
            "model": {"alias": TINY},
            "sampling": {"maxTokens": 64},
            "server": {"auth": auth},
        },
    ) as handle:
        yield handle
