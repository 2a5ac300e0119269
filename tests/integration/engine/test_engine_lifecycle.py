"""Loading and readiness: clear errors for bad model files, no requests before ready."""

from __future__ import annotations

from pathlib import Path

import pytest
from sentiric_inference.config import EngineSettings
from sentiric_inference.engine import Engine
from sentiric_inference.engine.types import GenerationRequest, SamplingParams
from sentiric_inference.errors import EngineFailure, NotReadyError
from sentiric_inference.metrics import Metrics

pytestmark = pytest.mark.model


def test_missing_model_file_fails_with_its_path(tmp_path: Path) -> None:
    path = tmp_path / "absent.gguf"
    engine = Engine(path, EngineSettings(), Metrics())
    assert not engine.ready
    assert engine.not_ready_reason == f"loading model {path}"
    with pytest.raises(EngineFailure, match=r"absent\.gguf"):
        engine.load()
    assert engine.not_ready_reason.startswith("model failed to load: model file not found")
    engine.close()


def test_corrupt_model_file_fails_clearly(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.gguf"
    path.write_bytes(b"GGUF" + b"\x00garbage" * 100)
    engine = Engine(path, EngineSettings(), Metrics())
    with pytest.raises(EngineFailure, match="not a valid GGUF"):
        engine.load()
    assert "corrupt.gguf" in engine.not_ready_reason
    engine.close()


async def test_requests_before_load_are_refused_and_ready_follows_the_model(
    tiny_model_path: Path,
) -> None:
    metrics = Metrics()
    engine = Engine(
        tiny_model_path, EngineSettings(parallel=2, context_size=128, threads=2), metrics
    )
    try:
        with pytest.raises(NotReadyError, match="loading model"):
            engine.submit(GenerationRequest((1, 2), SamplingParams(), "early"))
        with pytest.raises(NotReadyError):
            _ = engine.info
        assert metrics.registry.get_sample_value("sentiric_llm_model_ready") == 0
        await engine.start()
        assert engine.ready and engine.not_ready_reason == ""
        assert metrics.registry.get_sample_value("sentiric_llm_model_ready") == 1
        assert metrics.registry.get_sample_value("sentiric_llm_sequences_max") == 2
        assert engine.tokenize("hello")
    finally:
        await engine.stop()
    assert metrics.registry.get_sample_value("sentiric_llm_model_ready") == 0
