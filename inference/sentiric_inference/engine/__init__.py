"""The engine: one llama.cpp model and context driven by one scheduler thread.

Engine, GenerationStream and EngineStats are imported on first use, so importing
`sentiric_inference.engine.types` does not load llama.cpp's shared library.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .engine import Engine, EngineStats
    from .stream import GenerationStream

__all__ = ["Engine", "EngineStats", "GenerationStream"]

_HOMES = {"Engine": ".engine", "EngineStats": ".engine", "GenerationStream": ".stream"}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(home, __name__), name)
