"""engine.draftModel: one source, only with draftTokens, and where serve finds its file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sentiric_inference.config import EngineConfig

HUB = {"repo": "Qwen/Qwen2.5-0.5B-Instruct-GGUF", "file": "qwen2.5-0.5b-instruct-q4_k_m.gguf"}


def _config(engine: dict[str, Any]) -> EngineConfig:
    return EngineConfig.model_validate(
        {"model": {"path": "/models/target.gguf", "cacheDir": "/cache"}, "engine": engine}
    )


def test_a_hub_draft_lives_in_the_model_cache() -> None:
    config = _config({"draftTokens": 4, "draftModel": {"huggingFace": HUB}})
    draft = config.engine.draft_model
    assert draft is not None and draft.hugging_face is not None
    assert draft.hugging_face.revision == "main"
    assert draft.local_path(config.model.cache_dir) == Path("/cache") / HUB["file"]


def test_a_local_draft_is_used_where_it_is() -> None:
    config = _config({"draftTokens": 2, "draftModel": {"path": "/mnt/draft.gguf"}})
    assert config.engine.draft_model is not None
    assert config.engine.draft_model.local_path(Path("/cache")) == Path("/mnt/draft.gguf")


@pytest.mark.parametrize(
    ("engine", "says"),
    [
        ({"draftModel": {"path": "/mnt/d.gguf"}}, "draftTokens is 0"),
        ({"draftTokens": 4, "draftModel": {}}, "exactly one of path and huggingFace"),
        (
            {"draftTokens": 4, "draftModel": {"path": "/d.gguf", "huggingFace": HUB}},
            "exactly one of path and huggingFace",
        ),
        ({"draftTokens": 4, "draftModel": {"path": "/d.gguf", "sha256": "abc"}}, "sha256"),
        ({"draftTokens": 17}, "draftTokens"),
    ],
)
def test_bad_draft_settings_are_refused_naming_the_problem(
    engine: dict[str, Any], says: str
) -> None:
    with pytest.raises(ValidationError, match=says):
        _config(engine)
