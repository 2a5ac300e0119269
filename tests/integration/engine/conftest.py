"""Fixtures for engine tests: engines on real model files, always closed after the test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from engine_helpers import EngineFactory
from sentiric_inference.config import EngineSettings
from sentiric_inference.engine import Engine
from sentiric_inference.metrics import Metrics


@pytest.fixture
async def make_engine() -> AsyncIterator[EngineFactory]:
    """`await make_engine(path, **settings)` -> a loaded Engine, closed at teardown."""
    engines: list[Engine] = []

    async def factory(
        path: Path,
        *,
        metrics: Metrics | None = None,
        draft_model_path: Path | None = None,
        **settings: Any,
    ) -> Engine:
        # One thread: on a shared CI box, llama.cpp's spinning OpenMP workers make two
        # threads several times slower than one as soon as other processes want the CPU.
        settings.setdefault("threads", 1)
        engine = Engine(
            path,
            EngineSettings(**settings),
            metrics or Metrics(),
            draft_model_path=draft_model_path,
        )
        engines.append(engine)
        await engine.start()
        return engine

    try:
        yield factory
    finally:
        for engine in engines:
            await engine.stop()
