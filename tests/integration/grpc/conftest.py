"""Fixtures for the gRPC integration tests: a tiny-model server shared per module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server import ServerHandle, running_server

# The tiny model never samples its control tokens, so generations end by length or stop
# strings; the profile ceiling is high enough for streams that must outlive a cancel.
TINY_MAX_TOKENS = 4096


@pytest.fixture(scope="module")
def tiny_server(tiny_model_path: Path) -> Iterator[ServerHandle]:
    """One tiny-model server shared by a test module (4 parallel sequences)."""
    with running_server(
        tiny_model_path,
        parallel=4,
        context_size=8192,
        extra_config={"sampling": {"maxTokens": TINY_MAX_TOKENS}},
    ) as server:
        yield server
