"""The Ollama API's request and reply bodies (/api/*), as pydantic models (no web framework).

Every field Ollama's API documents is declared, so any Ollama client is understood; a field
this server cannot honour is refused with a reason by `protocol.ollama_convert`. Unknown
fields (top level and in `options`) are refused and types are strict, as on the OpenAI
surface: a misspelt `temprature` is a 400 naming `options.temprature`, not a silent default.
Messages ignore fields they do not know, as OpenAI messages do (clients echo replies back).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Options(_Body):
    """Ollama's `options` (its Modelfile PARAMETERs)."""

    # Sampling: mapped onto this server's (serving/params.py checks the ranges).
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    seed: int | None = None
    num_predict: int | None = None
    stop: str | list[str] | None = None
    repeat_penalty: float | None = None
    repeat_last_n: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    # Samplers this server does not run: accepted only at their neutral values.
    typical_p: float | None = None
    tfs_z: float | None = None
    mirostat: int | None = None
    mirostat_tau: float | None = None
    mirostat_eta: float | None = None
    # No effect in Ollama either (deprecated there), or none here: the context never shifts.
    penalize_newline: bool | None = None
    num_keep: int | None = None
    # How the model is loaded: fixed by the profile for every caller, so ignored here.
    num_ctx: int | None = None
    num_batch: int | None = None
    num_gpu: int | None = None
    main_gpu: int | None = None
    num_thread: int | None = None
    numa: bool | None = None
    low_vram: bool | None = None
    f16_kv: bool | None = None
    logits_all: bool | None = None
    vocab_only: bool | None = None
    use_mmap: bool | None = None
    use_mlock: bool | None = None
    embedding_only: bool | None = None


# `format`: "" (none), "json" (any JSON value... in practice an object), or a JSON schema.
Format = Literal["", "json"] | dict[str, Any]
KeepAlive = int | float | str


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    role: Literal["system", "user", "assistant", "tool"]
    content: str | None = None
    images: list[str] | None = None
    tool_calls: list[Any] | None = None
    tool_name: str | None = None
    thinking: str | None = None


class _Generating(_Body):
    model: str
    format: Format | None = None
    options: Options | None = None
    # Ollama streams unless told not to.
    stream: bool = True
    keep_alive: KeepAlive | None = None
    think: bool | Literal["low", "medium", "high"] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    # Ollama truncates or shifts prompts that outgrow the context; this server refuses them.
    truncate: bool | None = None
    shift: bool | None = None


class ChatRequest(_Generating):
    # Empty: Ollama's way to load the model without generating (done_reason "load").
    messages: list[Message] = []
    tools: list[Any] | None = None


class GenerateRequest(_Generating):
    # Empty: load the model without generating (done_reason "load").
    prompt: str | None = None
    suffix: str | None = None
    system: str | None = None
    template: str | None = None
    context: list[int] | None = None
    raw: bool | None = None
    images: list[str] | None = None
    # Image generation (experimental in Ollama).
    width: int | None = None
    height: int | None = None
    steps: int | None = None


class EmbedRequest(_Body):
    model: str
    input: str | list[str] = []
    # Ollama's default: cut an input longer than the context instead of refusing it.
    truncate: bool = True
    options: Options | None = None
    keep_alive: KeepAlive | None = None
    dimensions: int | None = None


class EmbeddingsRequest(_Body):
    """The legacy /api/embeddings: one prompt, one vector."""

    model: str
    prompt: str = ""
    options: Options | None = None
    keep_alive: KeepAlive | None = None


class ShowRequest(_Body):
    model: str | None = None
    # Older clients send the model as `name`.
    name: str | None = None
    verbose: bool | None = None


# -- replies ----------------------------------------------------------------------------------


class Version(BaseModel):
    version: str


class ModelDetails(BaseModel):
    parent_model: str = ""
    format: str = "gguf"
    family: str
    families: list[str]
    parameter_size: str
    quantization_level: str


class ListedModel(BaseModel):
    name: str
    model: str
    modified_at: str
    size: int
    digest: str
    details: ModelDetails


class TagsResponse(BaseModel):
    models: list[ListedModel]


class RunningModel(ListedModel):
    expires_at: str
    size_vram: int
    context_length: int


class PsResponse(BaseModel):
    models: list[RunningModel]


class ShowResponse(BaseModel):
    modelfile: str
    parameters: str
    template: str
    details: ModelDetails
    model_info: dict[str, Any]
    capabilities: list[str]
    modified_at: str


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class _Reply(BaseModel):
    """Every chunk of a reply; the last one (`done`) adds the reason, counts and durations.

    Serialised with exclude_none, so a chunk that is not the last carries none of them.
    """

    model: str
    created_at: str
    done: bool = False
    done_reason: str | None = None
    total_duration: int | None = None
    load_duration: int | None = None
    prompt_eval_count: int | None = None
    prompt_eval_duration: int | None = None
    eval_count: int | None = None
    eval_duration: int | None = None


class ChatChunk(_Reply):
    message: AssistantMessage


class GenerateChunk(_Reply):
    response: str


class EmbedResponse(BaseModel):
    model: str
    embeddings: list[list[float]]
    total_duration: int
    load_duration: int = 0
    prompt_eval_count: int


class EmbeddingsResponse(BaseModel):
    embedding: list[float]
