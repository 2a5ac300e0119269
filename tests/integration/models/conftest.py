"""Fixtures for the download tests: a running fake Hub and a tiny "model" it serves."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.support.fake_hub import FakeHub

REPO = "Qwen/Tiny-GGUF"
FILE = "tiny-q4_k_m.gguf"
TOKEN = "hf_test_token"


@pytest.fixture
def model_bytes() -> bytes:
    # Incompressible and large enough to span many network reads (and a cut in the middle).
    return os.urandom(3 * 1024 * 1024 + 123)


@pytest.fixture
def hub(model_bytes: bytes) -> Iterator[FakeHub]:
    fake = FakeHub(valid_tokens={TOKEN, "hf_not_granted"})
    fake.add_file(REPO, FILE, model_bytes)
    fake.add_file(REPO, "README.md", b"# tiny\n", lfs=False)
    private = fake.add_file("acme/private-GGUF", FILE, model_bytes, private=True)
    fake.repos["acme/private-GGUF"].forbidden_tokens.add("hf_not_granted")
    assert private.sha256
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()
