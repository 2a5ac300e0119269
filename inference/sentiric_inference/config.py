"""The engine configuration file (`engine.yaml`): the contract between the operator and `serve`.

The operator renders an LLMProfile's spec into this file (same camelCase keys as the CRD),
and `sentiric-llm serve --config` reads it. Unknown keys are refused so a typo in a profile
fails loudly instead of silently falling back to a default.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from sentiric_inference.sampling_bounds import MinP, RepeatPenalty, Temperature, TopP

HTTP_PORT = 16070
GRPC_PORT = 16071


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class HuggingFaceSource(_Model):
    repo: str
    file: str
    revision: str = "main"


class ModelConfig(_Model):
    """Where the GGUF is: a local `path`, or a Hub file downloaded into `cacheDir`."""

    path: Path | None = None
    hugging_face: HuggingFaceSource | None = None
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")
    cache_dir: Path = Path("/models")
    # Name reported by /v1/models and accepted in the `model` field of requests.
    alias: str | None = None

    def local_path(self) -> Path | None:
        """The file `serve` loads: an explicit path, or where `download` puts the Hub file."""
        if self.path is not None:
            return self.path
        if self.hugging_face is not None:
            return self.cache_dir / self.hugging_face.file
        return None


class DraftModelConfig(_Model):
    """A small model with the target's vocabulary whose guesses speed up decoding
    (engine/draft_model.py): a local `path`, or a Hub file `download` puts in model.cacheDir."""

    path: Path | None = None
    hugging_face: HuggingFaceSource | None = None
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")

    @model_validator(mode="after")
    def _one_source(self) -> DraftModelConfig:
        if (self.path is None) == (self.hugging_face is None):
            raise ValueError("engine.draftModel needs exactly one of path and huggingFace")
        return self

    def local_path(self, cache_dir: Path) -> Path:
        if self.path is not None:
            return self.path
        assert self.hugging_face is not None  # _one_source
        return cache_dir / self.hugging_face.file


class EngineSettings(_Model):
    # Tokens of context each sequence may use (prompt + output). The KV cache holds
    # contextSize * parallel cells, so every sequence can reach its full context at once.
    # 0 = automatic: sized with `parallel` to the memory the engine has (engine/sizing.py).
    context_size: int = Field(default=4096, ge=0, le=1_048_576)
    # Sequences decoded together; 0 = automatic, as many as the memory holds (engine/sizing.py).
    parallel: int = Field(default=4, ge=0, le=256)
    # Element type of the KV cache: q8_0 halves its memory, q4_0 quarters it (llama.cpp's
    # type_k / type_v); a quantized cache needs flash attention, so "auto" turns it on.
    kv_cache_type: Literal["f16", "q8_0", "q4_0"] = "f16"
    # "unified": one pool of cells for all sequences (a shared prefix holds its cells once,
    # but every step's attention visits the used range of the whole pool); "streams": one
    # stream of contextSize cells per sequence, scanned alone (docs/kubernetes.md).
    kv_layout: Literal["unified", "streams"] = "unified"
    gpu_layers: int = Field(default=-1, ge=-1)
    flash_attention: Literal["auto", "on", "off"] = "auto"
    # Most tokens one llama_decode takes: one per generating sequence, then chunks of waiting
    # prompts. Every stream waits while a step runs and a CPU evaluates prompts slowly, so
    # small chunks keep answers flowing there (docs/kubernetes.md). 0 = 512 when layers run on
    # a GPU, 64 on a CPU (engine/planning.py).
    batch_size: int = Field(default=0, ge=0, le=65536)
    # 0 = one per CPU this process may use: its affinity, capped by a cgroup CPU limit.
    threads: int = Field(default=0, ge=0, le=1024)
    # Requests waiting for a free sequence before new ones get 429 / RESOURCE_EXHAUSTED.
    max_queue: int = Field(default=64, ge=0, le=100_000)
    # Reuse KV cells of a shared prompt prefix across sequences (llama_memory_seq_cp).
    prefix_cache: bool = True
    # Most KV cells that finished requests' caches may hold (0 = no limit); beyond it the least
    # recently used go. Idle cells slow every decode step a little (docs/performance.md), but
    # a caller's next turn reuses its whole conversation, so the default keeps them all.
    idle_cache_limit: int = Field(default=0, ge=0, le=100_000_000)
    # When a request reaches an idle engine, wait up to this long for requests the server is
    # still preparing (rendering, tokenizing), so a wave of calls arriving together starts in
    # one step instead of the first alone and the rest a step later. Nothing running is
    # delayed by it. 0 = never wait.
    arrival_wait_ms: int = Field(default=10, ge=0, le=1000)
    # Threads that sample a step's sequences (0 = as many as useful when the model runs on a
    # GPU, up to 8, and one on a CPU, whose cores llama.cpp's threads already use).
    sampling_threads: int = Field(default=0, ge=0, le=64)
    # A second, small llama.cpp context on the same model for /v1/embeddings and /api/embed
    # (engine/embedding.py): 512 KV cells and its compute buffers, counted in the memory plan.
    embeddings: bool = True
    # Prompt-lookup speculative decoding (engine/drafting.py): up to this many guessed tokens
    # ride along with each generating sequence's token in a step and are kept where the model
    # samples the same; the output is what plain decoding gives. 0 = off.
    draft_tokens: int = Field(default=0, ge=0, le=16)
    # Where guesses come from when draftTokens > 0: this model's greedy continuation (e.g.
    # Qwen2.5-0.5B for 3B or 7B); unset = prompt lookup.
    draft_model: DraftModelConfig | None = None

    @field_validator("batch_size")
    @classmethod
    def _batch_size_is_automatic_or_at_least_16(cls, value: int) -> int:
        if 0 < value < 16:
            raise ValueError("must be 0 (automatic) or at least 16")
        return value

    @field_validator("context_size")
    @classmethod
    def _context_is_automatic_or_at_least_64(cls, value: int) -> int:
        if 0 < value < 64:
            raise ValueError("must be 0 (automatic) or at least 64")
        return value

    @model_validator(mode="after")
    def _quantized_kv_needs_flash_attention(self) -> EngineSettings:
        if self.kv_cache_type != "f16" and self.flash_attention == "off":
            raise ValueError(
                f"kvCacheType {self.kv_cache_type} needs flash attention: set flashAttention "
                "to auto or on, or kvCacheType to f16"
            )
        return self

    @model_validator(mode="after")
    def _draft_model_needs_draft_tokens(self) -> EngineSettings:
        if self.draft_model is not None and self.draft_tokens == 0:
            raise ValueError(
                "engine.draftModel is set but engine.draftTokens is 0: set how many tokens it "
                "guesses a step (e.g. 4), or remove draftModel"
            )
        return self


class SamplingDefaults(_Model):
    """Defaults for requests that do not set a parameter; maxTokens is also the ceiling."""

    # Bounded by the same types as each request's values (sampling_bounds.py).
    temperature: Temperature = 0.7
    top_p: TopP = 0.95
    top_k: int = Field(default=40, ge=0)
    min_p: MinP = 0.05
    repeat_penalty: RepeatPenalty = 1.0
    max_tokens: int = Field(default=512, ge=1)


class PromptSettings(_Model):
    system: str = ""
    rag_template: str = (
        "Answer using only the facts below.\n\n{rag_context}\n\nQuestion: {user_prompt}"
    )
    # A JSON schema every request of the profile is answered in unless it sends its own
    # response_format, so a client that knows nothing of the schema (Ollama's, OpenAI's,
    # gRPC's) still gets JSON matching it. The root must be an object, as OpenAI's structured
    # outputs require; EngineConfig bounds it by server.limits (check_response_format).
    response_format: dict[str, Any] | None = None

    @field_validator("response_format")
    @classmethod
    def _object_schema(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        try:
            # YAML can hold what JSON cannot (dates, non-string keys): refuse it here.
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"must hold only JSON values: {exc}") from exc
        if value.get("type") != "object":
            raise ValueError('must be a JSON schema whose root is {"type": "object", ...}')
        return value

    @field_validator("rag_template")
    @classmethod
    def _template_has_placeholders(cls, value: str) -> str:
        # A field validator, so the error's location names prompt.ragTemplate.
        if "{rag_context}" not in value or "{user_prompt}" not in value:
            raise ValueError("must contain both {rag_context} and {user_prompt}")
        return value


class TLSSettings(_Model):
    """TLS from mounted files: gRPC always, the HTTP port too with `https`.

    The files are re-read when they change (tls_files.py), on both ports.
    """

    cert_file: Path
    key_file: Path
    # Spelled like the CRD's clientCASecretName (to_camel would give clientCaFile).
    # gRPC only: HTTPS callers (browsers, the openai client, kubelet probes, Prometheus)
    # authenticate with API keys, so the HTTP port never asks for a client certificate.
    client_ca_file: Path | None = Field(default=None, alias="clientCAFile")
    # Serve the HTTP port as HTTPS only, with the same certificate and key.
    https: bool = False


class LimitsSettings(_Model):
    """What one request may cost the server before it is refused (docs/http-api.md, Limits).

    Every bound is checked before the work it protects runs, so a hostile request is a
    400 / 413 / INVALID_ARGUMENT instead of a crash, a frozen event loop or lasting memory.
    """

    # An HTTP request body, and a gRPC request message, larger than this is refused unread.
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024, le=1024 * 1024 * 1024)
    # Seconds a client gets to send a request's headers, and then its whole body: slow or
    # stalled senders are dropped instead of holding a connection forever.
    read_timeout_seconds: float = Field(default=15.0, gt=0, le=3600)
    # HTTP connections plus in-flight requests (HTTP 503 beyond), and concurrent gRPC calls
    # (RESOURCE_EXHAUSTED beyond).
    max_connections: int = Field(default=1024, ge=1, le=1_000_000)
    # Characters of prompt text (every message, RAG context and system prompt together)
    # checked before tokenizing; 0 = 16 per token of engine.contextSize, more than any real
    # text needs to fill the context.
    max_prompt_chars: int = Field(default=0, ge=0, le=1024 * 1024 * 1024)
    # A response_format JSON schema: its size as JSON, how deeply it (or a `pattern`'s
    # groups) may nest, the largest count keyword (maxLength, minItems, {m,n}, ...) and how
    # many properties one object may list. Each keeps the grammar llama.cpp builds bounded.
    max_schema_bytes: int = Field(default=64 * 1024, ge=256, le=64 * 1024 * 1024)
    max_schema_depth: int = Field(default=32, ge=2, le=256)
    max_schema_repetition: int = Field(default=1000, ge=1, le=100_000)
    max_schema_properties: int = Field(default=256, ge=1, le=100_000)
    # The GBNF grammar generated from a schema; also bounds what the grammar cache holds.
    max_grammar_bytes: int = Field(default=256 * 1024, ge=1024, le=256 * 1024 * 1024)
    # Inputs one embeddings request may hold (each also at most the embedding context's
    # 512 tokens, and all of them together at most maxPromptChars characters).
    max_embedding_inputs: int = Field(default=256, ge=1, le=100_000)


class PerKeyLimits(_Model):
    """What each API key may use (docs/http-api.md, API keys); 0 = no limit.

    The same limits hold for every key, each counted on its own, so one app's burst is
    refused (429 / RESOURCE_EXHAUSTED) while the others are still served.
    """

    # Requests started in any 60 s window (generations, tokenize and detokenize).
    requests_per_minute: int = Field(default=0, ge=0, le=10_000_000)
    # Prompt plus completion tokens of the requests that finished in any 60 s window; while
    # a key is over it, its new requests are refused until enough of the window has passed.
    tokens_per_minute: int = Field(default=0, ge=0, le=1_000_000_000)
    # Requests in flight at once (waiting for a sequence or generating).
    max_concurrent: int = Field(default=0, ge=0, le=1_000_000)


class AuthSettings(_Model):
    """API keys for HTTP and gRPC: with a key file, every API call needs one of its keys."""

    # One key per line, `name:key` or a bare key; blank lines and `#` comments are ignored.
    # Read again when it changes (a Kubernetes Secret update needs no restart).
    api_keys_file: Path | None = None
    per_key: PerKeyLimits = PerKeyLimits()

    @model_validator(mode="after")
    def _limits_need_keys(self) -> AuthSettings:
        limited = self.per_key != PerKeyLimits()
        if limited and self.api_keys_file is None:
            raise ValueError(
                "perKey limits apply to API keys: set apiKeysFile (or serve --api-key-file)"
            )
        return self


class ServerSettings(_Model):
    host: str = "0.0.0.0"
    http_port: int = Field(default=HTTP_PORT, ge=1, le=65535)
    grpc_port: int = Field(default=GRPC_PORT, ge=1, le=65535)
    tls: TLSSettings | None = None
    log_format: Literal["json", "text"] = "text"
    log_level: str = "INFO"
    limits: LimitsSettings = LimitsSettings()
    auth: AuthSettings = AuthSettings()


def check_response_format(prompt: PromptSettings, limits: LimitsSettings) -> None:
    """Raise ValueError unless prompt.responseFormat is a valid JSON schema within `limits`.

    The same bounds and metaschema check a request's own schema gets, run when the config
    (or an LLMProfile, in the operator) is read, so a bad default fails there, not on every
    request.
    """
    if prompt.response_format is None:
        return
    # Imported here: schema_limits imports this module (for LimitsSettings).
    from sentiric_inference.errors import InvalidRequestError
    from sentiric_inference.schema_limits import checked_schema

    try:
        checked_schema(prompt.response_format, limits, "prompt.responseFormat")
    except InvalidRequestError as exc:
        raise ValueError(exc.message) from exc


class EngineConfig(_Model):
    model: ModelConfig = ModelConfig()
    engine: EngineSettings = EngineSettings()
    sampling: SamplingDefaults = SamplingDefaults()
    prompt: PromptSettings = PromptSettings()
    server: ServerSettings = ServerSettings()

    @model_validator(mode="after")
    def _response_format_within_limits(self) -> EngineConfig:
        check_response_format(self.prompt, self.server.limits)
        return self


def load_config(path: Path) -> EngineConfig:
    """Read engine.yaml; pydantic's ValidationError names the offending key."""
    data = yaml.safe_load(path.read_text()) or {}
    return EngineConfig.model_validate(data)


def dump_config(config: EngineConfig) -> str:
    """Render the YAML `load_config` reads back (used by the operator's ConfigMap builder)."""
    data = config.model_dump(mode="json", by_alias=True, exclude_none=True)
    return yaml.safe_dump(data, sort_keys=True)
