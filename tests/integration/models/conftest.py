"""Fixtures for the download tests: a running fake Hub and a tiny "model" it serves."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.integration.models.samples import FILE, NOT_GRANTED_TOKEN, PRIVATE_REPO, REPO, TOKEN
from tests.support.fake_hub import FakeHub


@pytest.fixture
def model_bytes() -> bytes:
    # Incompressible and large enough to span many network reads (and a cut in the middle).
    return os.urandom(3 * 1024 * 1024 + 123)


@pytest.fixture
def hub(model_bytes: bytes) -> Iterator[FakeHub]:
    fake = FakeHub(valid_tokens={TOKEN, NOT_GRANTED_TOKEN})
    fake.add_file(REPO, FILE, model_bytes)
    fake.add_file(REPO, "README.md", b"# tiny\n", lfs=False)
    fake.add_file(PRIVATE_REPO, FILE, model_bytes, private=True)
    fake.repos[PRIVATE_REPO].forbidden_tokens.add(NOT_GRANTED_TOKEN)
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()
