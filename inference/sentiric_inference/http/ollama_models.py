"""The one served model as Ollama's /api/tags, /api/ps and /api/show describe models.

Ollama names models `name:tag`; this server answers to its model name (the profile's alias)
with or without `:latest`. The digest identifies the file's version (name, size and
modification time), not its SHA-256: hashing gigabytes at every listing would cost minutes.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sentiric_inference.errors import shown
from sentiric_inference.http.errors import ApiError
from sentiric_inference.protocol.ollama import (
    ListedModel,
    ModelDetails,
    RunningModel,
    ShowResponse,
)

if TYPE_CHECKING:
    from sentiric_inference.serving.service import Serving

# llama.cpp's llama_ftype values (general.file_type) -> the names Ollama shows.
_FILE_TYPES = {
    0: "F32",
    1: "F16",
    2: "Q4_0",
    3: "Q4_1",
    7: "Q8_0",
    8: "Q5_0",
    9: "Q5_1",
    10: "Q2_K",
    11: "Q3_K_S",
    12: "Q3_K_M",
    13: "Q3_K_L",
    14: "Q4_K_S",
    15: "Q4_K_M",
    16: "Q5_K_S",
    17: "Q5_K_M",
    18: "Q6_K",
    19: "IQ2_XXS",
    20: "IQ2_XS",
    21: "Q2_K_S",
    22: "IQ3_XS",
    23: "IQ3_XXS",
    24: "IQ1_S",
    25: "IQ4_NL",
    26: "IQ3_S",
    27: "IQ3_M",
    28: "IQ2_S",
    29: "IQ2_M",
    30: "IQ4_XS",
    31: "IQ1_M",
    32: "BF16",
}
# Ollama shows a model kept loaded for ever (keep_alive < 0) as expiring in this far future.
_NEVER = "2318-01-01T00:00:00Z"


def ollama_name(serving: Serving) -> str:
    name = serving.model_name
    return name if ":" in name else f"{name}:latest"


def check_model(serving: Serving, model: str | None, param: str = "model") -> str:
    """The name the client used, or ApiError 404 (400 when it sent none)."""
    if not model:
        raise ApiError(400, f"'{param}' is required.", type="invalid_request_error", param=param)
    if model not in (serving.model_name, ollama_name(serving)):
        raise ApiError(
            404,
            f"model {shown(model)} not found: this server serves '{ollama_name(serving)}' "
            "(see GET /api/tags); models are set by the profile, not pulled.",
            type="not_found_error",
            param=param,
        )
    return model


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


def _file(serving: Serving) -> Path | None:
    if serving.engine.ready:
        return Path(serving.engine.info.path)
    return serving.config.model.local_path()


def _metadata(serving: Serving) -> dict[str, str]:
    return serving.engine.info.metadata if serving.engine.ready else {}


def details(serving: Serving) -> ModelDetails:
    meta = _metadata(serving)
    family = meta.get("general.architecture", "")
    file_type = meta.get("general.file_type", "")
    quantization = _FILE_TYPES.get(int(file_type), file_type) if file_type.isdigit() else ""
    return ModelDetails(
        family=family,
        families=[family] if family else [],
        parameter_size=meta.get("general.size_label", ""),
        quantization_level=quantization,
    )


def listed(serving: Serving) -> ListedModel:
    path = _file(serving)
    size, modified = 0, 0.0
    if path is not None and path.is_file():
        stat = path.stat()
        size, modified = stat.st_size, stat.st_mtime
    name = ollama_name(serving)
    version = f"{name}\0{path.name if path else ''}\0{size}\0{modified}"
    return ListedModel(
        name=name,
        model=name,
        modified_at=_iso(modified),
        size=size,
        digest=hashlib.sha256(version.encode()).hexdigest(),
        details=details(serving),
    )


def running(serving: Serving) -> list[RunningModel]:
    """The loaded model (none while loading): it stays loaded until the server stops."""
    if not serving.engine.ready:
        return []
    model = listed(serving)
    backends = serving.engine.backends
    gpu = serving.config.engine.gpu_layers != 0 and backends is not None and bool(backends.gpu)
    return [
        RunningModel(
            **model.model_dump(),
            expires_at=_NEVER,
            # Weights offloaded to a GPU; the KV cache and buffers are not counted.
            size_vram=model.size if gpu else 0,
            context_length=serving.context_size,
        )
    ]


def _value(text: str) -> Any:
    """A metadata value as a number when it is one (Ollama's model_info has numbers)."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def show(serving: Serving) -> ShowResponse:
    meta = _metadata(serving)
    arch = meta.get("general.architecture", "")
    info = {
        key: _value(value)
        for key, value in sorted(meta.items())
        if key.startswith("general.") or (arch and key.startswith(f"{arch}."))
    }
    sampling = serving.config.sampling
    parameters = {
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "top_k": sampling.top_k,
        "min_p": sampling.min_p,
        "repeat_penalty": sampling.repeat_penalty,
        "num_predict": sampling.max_tokens,
        "num_ctx": serving.context_size,
    }
    parameter_text = "\n".join(f"{name:<16}{value}" for name, value in parameters.items())
    path = _file(serving)
    modelfile = "# Served by sentiric-llm; the profile (LLMProfile) sets these.\n"
    modelfile += f"FROM {path.name if path else ''}\n"
    modelfile += "".join(f"PARAMETER {name} {value}\n" for name, value in parameters.items())
    capabilities = ["completion"]
    if serving.engine.embedding_info is not None:
        capabilities.append("embedding")
    template = serving.engine.info.chat_template if serving.engine.ready else None
    return ShowResponse(
        modelfile=modelfile,
        parameters=parameter_text,
        # The GGUF's own chat template (Jinja, as llama.cpp reads it; not Go's template syntax).
        template=template or "",
        details=details(serving),
        model_info=info,
        capabilities=capabilities,
        modified_at=listed(serving).modified_at,
    )
