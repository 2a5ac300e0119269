"""Prometheus metrics of one inference process (names are a contract with
dashboards: docs/http-api.md, Metrics).

Each server gets its own registry so tests can run several in one process.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

PREFIX = "sentiric_llm"

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_DURATION_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)
# One scheduler step's phases: a fraction of a millisecond (sampling a few rows, a GPU decode)
# up to seconds (a long prompt chunk on a CPU).
_STEP_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


class Metrics:
    """Every metric the engine (scheduler side) and the serving layer (request side) update."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        """Declare every metric in `registry` (a fresh one by default, as tests use).

        Longer than 80 lines on purpose: a flat list of declarations, one per metric, each
        with its help text; split into groups it would only be harder to find one.
        """
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        # Which llama.cpp kernels serve: the CPU variant picked at start and the GPU, if any.
        self.build_info = Info(
            f"{PREFIX}_build",
            "llama.cpp backends in use: cpu_variant (e.g. zen4, haswell, builtin), gpu (none or "
            "the device), extra_buffer_types (weight repacking on/off), llama_cpp_python.",
            registry=r,
        )
        # Request side (serving layer).
        self.requests_total = Counter(
            f"{PREFIX}_requests_total",
            "Requests by API surface and outcome (stop, length, cancelled, context_full, "
            "error, invalid, overloaded, rate_limited, unavailable).",
            ["api", "outcome"],
            registry=r,
        )
        self.time_to_first_token = Histogram(
            f"{PREFIX}_time_to_first_token_seconds",
            "Seconds from request arrival to its first streamed text.",
            ["api"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.request_duration = Histogram(
            f"{PREFIX}_request_duration_seconds",
            "Seconds from request arrival to its finish.",
            ["api"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        # Per API key (server.auth): labelled with the key's name from the key file, never
        # the key. Only API calls made with a key are counted here.
        self.key_requests_total = Counter(
            f"{PREFIX}_key_requests_total",
            "Requests per API key name and outcome (as requests_total, plus rate_limited; "
            "tokenize and detokenize calls end ok).",
            ["key", "outcome"],
            registry=r,
        )
        self.key_tokens_total = Counter(
            f"{PREFIX}_key_tokens_total",
            "Tokens per API key name, kind prompt or completion (counted as requests finish).",
            ["key", "kind"],
            registry=r,
        )
        self.key_rejections_total = Counter(
            f"{PREFIX}_key_rejections_total",
            "Requests refused because an API key was over a server.auth.perKey limit "
            "(requests_per_minute, tokens_per_minute, max_concurrent).",
            ["key", "limit"],
            registry=r,
        )
        self.key_requests_in_flight = Gauge(
            f"{PREFIX}_key_requests_in_flight",
            "Requests of each API key name in flight (waiting or generating).",
            ["key"],
            registry=r,
        )
        self.auth_failures_total = Counter(
            f"{PREFIX}_auth_failures_total",
            "API calls refused for a missing or unknown API key (401 / UNAUTHENTICATED), by "
            "api (http, grpc) and reason (missing, invalid).",
            ["api", "reason"],
            registry=r,
        )
        # Engine side (scheduler thread).
        self.prompt_tokens = Counter(
            f"{PREFIX}_prompt_tokens", "Prompt tokens admitted (cached or evaluated).", registry=r
        )
        self.prompt_tokens_evaluated = Counter(
            f"{PREFIX}_prompt_tokens_evaluated",
            "Prompt tokens actually run through llama_decode (not reused from the KV cache).",
            registry=r,
        )
        self.generated_tokens = Counter(
            f"{PREFIX}_generated_tokens", "Tokens sampled for requests.", registry=r
        )
        self.draft_tokens = Counter(
            f"{PREFIX}_draft_tokens",
            "Tokens guessed by prompt lookup and fed to llama_decode (engine.draftTokens).",
            registry=r,
        )
        self.draft_tokens_accepted = Counter(
            f"{PREFIX}_draft_tokens_accepted",
            "Guessed tokens the model sampled too, kept as output; over draft_tokens_total it "
            "is the draft acceptance rate.",
            registry=r,
        )
        self.prefix_cache_hits = Counter(
            f"{PREFIX}_prefix_cache_hits",
            "Requests whose prompt prefix was reused from the KV cache.",
            registry=r,
        )
        self.prefix_cache_tokens = Counter(
            f"{PREFIX}_prefix_cache_tokens",
            "Prompt tokens reused from the KV cache instead of being evaluated.",
            registry=r,
        )
        self.queue_depth = Gauge(
            f"{PREFIX}_queue_depth", "Requests waiting for a free sequence.", registry=r
        )
        self.sequences_active = Gauge(
            f"{PREFIX}_sequences_active", "Sequences prefilling or generating.", registry=r
        )
        self.sequences_max = Gauge(
            f"{PREFIX}_sequences_max", "Parallel sequences the context holds.", registry=r
        )
        self.kv_cache_usage_ratio = Gauge(
            f"{PREFIX}_kv_cache_usage_ratio", "Share of KV cache cells in use.", registry=r
        )
        self.batch_tokens = Histogram(
            f"{PREFIX}_batch_tokens",
            "Tokens in each llama_decode call.",
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.decode_steps = Counter(
            f"{PREFIX}_decode_steps", "llama_decode calls made by the scheduler.", registry=r
        )
        self.step_decode_seconds = Histogram(
            f"{PREFIX}_step_decode_seconds",
            "Seconds each llama_decode took, until its logits were ready (a GPU's included).",
            buckets=_STEP_BUCKETS,
            registry=r,
        )
        self.step_sampling_seconds = Histogram(
            f"{PREFIX}_step_sampling_seconds",
            "Seconds spent sampling one step's sequences (see engine.samplingThreads).",
            buckets=_STEP_BUCKETS,
            registry=r,
        )
        self.decode_errors = Counter(
            f"{PREFIX}_decode_errors", "llama_decode calls that failed.", registry=r
        )
        self.model_ready = Gauge(
            f"{PREFIX}_model_ready", "1 once the model is loaded and serving.", registry=r
        )
