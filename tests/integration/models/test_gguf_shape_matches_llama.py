"""The download's pure-Python shape equals what the engine reads through llama.cpp at start.

The operator sizes pods from the shape `sentiric-llm download` reports; the engine sizes itself
from llama.cpp's metadata. Both must describe the same model, or status.plan and the memory
request would disagree with the pods' own plans.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sentiric_inference.engine.native import Model
from sentiric_inference.engine.sizing import ModelShape
from sentiric_inference.models.gguf_metadata import read_metadata, read_model_shape

pytestmark = pytest.mark.model


def _llama_shape(path: Path) -> ModelShape:
    model = Model(path, gpu_layers=0)
    try:
        return ModelShape.from_metadata(
            model.metadata(), n_vocab=model.n_vocab, weights_bytes=path.stat().st_size
        )
    finally:
        model.close()


@pytest.mark.parametrize("fixture", ["tiny_model_path", "smollm2_path"])
def test_shape_matches_llama_cpp(fixture: str, request: pytest.FixtureRequest) -> None:
    path: Path = request.getfixturevalue(fixture)
    assert read_model_shape(path) == _llama_shape(path)


@pytest.mark.parametrize("fixture", ["tiny_model_path", "smollm2_path"])
def test_scalar_values_match_llama_cpp(fixture: str, request: pytest.FixtureRequest) -> None:
    path: Path = request.getfixturevalue(fixture)
    ours = read_metadata(path).values
    model = Model(path, gpu_layers=0)
    try:
        theirs = model.metadata()
    finally:
        model.close()
    # llama.cpp prints floats its own way; integers and strings must be identical.
    for key, value in theirs.items():
        if key not in ours:
            continue  # llama.cpp also lists arrays, which the reader only counts
        try:
            assert float(ours[key]) == pytest.approx(float(value)), key
        except ValueError:
            # Model.metadata() cuts values at 512 bytes (a license text, say).
            assert ours[key] == value or (len(value) >= 500 and ours[key].startswith(value)), key
    assert {k for k in ours if not k.startswith("tokenizer.")} <= set(theirs)
