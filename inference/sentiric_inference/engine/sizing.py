"""Auto sizing: parallel sequences x context x batch that fit the memory the engine really has.

`engine.parallel: 0` and `engine.contextSize: 0` ask for this. The KV cache is what grows
with both: every cell holds one token's keys and values for every layer, so

    kv bytes = parallel * contextSize * layers * kvHeads * (keyDim + valueDim) * bytes/element

and the plan takes the largest shape that leaves `HEADROOM` of the budget free once the
weights, the compute buffers and the process itself are counted. The budget is free GPU
memory when layers are offloaded, else the container's cgroup memory limit, else the host's.
Everything here is pure arithmetic, so tests drive it with model shapes and budgets alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from ..config import EngineSettings

KvCacheType = Literal["f16", "q8_0", "q4_0"]

# Bytes per element: f16 is 2; ggml's q8_0 and q4_0 pack 32 values in 34 and 18 bytes.
KV_BYTES_PER_ELEMENT: Mapping[str, float] = {"f16": 2.0, "q8_0": 34 / 32, "q4_0": 18 / 32}

# Kept free after the plan: allocator slack, fragmentation, the page cache a CPU pod's mmapped
# weights need, and a margin for the estimate below.
HEADROOM = 0.15
# Python, the web stacks and llama.cpp's own tables before any model (measured RSS ~200 MiB).
PROCESS_BYTES = 256 * 2**20
# Auto context: the trained context, capped where a longer one rarely pays for its KV cells.
CONTEXT_TARGET_GPU = 8192
CONTEXT_TARGET_CPU = 4096
# Below this a chat with a system prompt and RAG block no longer fits; only memory forces it.
CONTEXT_FLOOR = 2048
CONTEXT_MIN = 256
# Auto parallel: a CPU's decode is memory-bound up to a handful of sequences, a GPU's much
# further; more slots than that only queue inside the batch instead of the queue.
PARALLEL_CAP_GPU = 32
PARALLEL_CAP_CPU = 8
# Prefer this many sequences over a longer context when memory forces a choice.
PARALLEL_PREFERRED_GPU = 4
PARALLEL_PREFERRED_CPU = 2
# The embedding context (engine/embedding.py): its KV cells, one micro-batch of this many
# tokens, and as many outputs (every token of a pooled input is an output row).
EMBEDDING_TOKENS = 512


@dataclass(frozen=True, slots=True)
class ModelShape:
    """What the KV cache and compute buffers depend on, read from GGUF metadata."""

    n_layer: int
    n_head_kv: int
    key_length: int
    value_length: int
    n_embd: int
    n_vocab: int
    n_ctx_train: int
    weights_bytes: int

    @classmethod
    def from_metadata(
        cls, meta: Mapping[str, str], *, n_vocab: int, weights_bytes: int
    ) -> ModelShape:
        """From llama.cpp's metadata strings (`general.architecture`, `<arch>.block_count`...)."""
        arch = meta.get("general.architecture", "")

        def num(key: str, default: int | None = None) -> int:
            value = meta.get(f"{arch}.{key}")
            if value is None:
                if default is None:
                    raise ValueError(f"GGUF metadata has no {arch}.{key}")
                return default
            return int(float(value))

        n_embd = num("embedding_length")
        n_head = num("attention.head_count")
        head_dim = n_embd // max(n_head, 1)
        return cls(
            n_layer=num("block_count"),
            n_head_kv=num("attention.head_count_kv", n_head),
            key_length=num("attention.key_length", head_dim),
            value_length=num("attention.value_length", head_dim),
            n_embd=n_embd,
            n_vocab=n_vocab,
            n_ctx_train=num("context_length", 4096),
            weights_bytes=weights_bytes,
        )

    def kv_bytes_per_token(self, kv_type: str) -> float:
        elements = self.n_layer * self.n_head_kv * (self.key_length + self.value_length)
        return elements * KV_BYTES_PER_ELEMENT[kv_type]

    def compute_bytes(self, batch: int, outputs: int) -> int:
        """llama.cpp's compute and output buffers, approximately (an upper estimate).

        Logits take n_vocab floats per output row; the graph's activations a few n_embd-wide
        f32 rows per batch token (llama.cpp reuses them between layers).
        """
        ubatch = min(batch, 512)
        activations = ubatch * self.n_embd * 4 * 16
        logits = max(outputs, ubatch) * self.n_vocab * 4 * 2
        return activations + logits

    def embedding_bytes(self, kv_type: str = "f16") -> int:
        """What engine.embeddings costs: the embedding context's KV cells and buffers."""
        tokens = min(EMBEDDING_TOKENS, self.n_ctx_train)
        kv = int(tokens * self.kv_bytes_per_token(kv_type))
        return kv + self.compute_bytes(tokens, tokens)


@dataclass(frozen=True, slots=True)
class Budget:
    """Bytes the engine may use and where that figure came from (logged with the plan)."""

    bytes: int
    source: str  # "gpu free memory", "cgroup memory limit", "host memory"
    # Whether the weights are inside `bytes` still to be paid (CPU) or already resident
    # outside it (GPU free memory is read after the weights are on the device).
    includes_weights: bool = True


@dataclass(frozen=True, slots=True)
class SizingPlan:
    parallel: int
    context_size: int
    batch_size: int
    kv_cache_type: str
    kv_bytes: int
    compute_bytes: int
    weights_bytes: int
    budget: Budget
    fits: bool
    automatic: tuple[str, ...]  # which settings were chosen here ("parallel", "contextSize")
    # The embedding context (engine.embeddings), 0 when it is off.
    embedding_bytes: int = 0
    # A draft model's weights (when counted) and compute buffers; its KV is in kv_bytes.
    draft_bytes: int = 0

    @property
    def total_bytes(self) -> int:
        """Weights (when counted in the budget) + KV + compute + embeddings + the process."""
        weights = self.weights_bytes if self.budget.includes_weights else 0
        return (
            weights
            + self.kv_bytes
            + self.compute_bytes
            + self.embedding_bytes
            + self.draft_bytes
            + PROCESS_BYTES
        )

    def describe(self) -> str:
        mib = 2**20
        chosen = ", ".join(self.automatic) or "nothing (all set explicitly)"
        return (
            f"{self.parallel} sequences x {self.context_size} tokens, {self.batch_size}-token "
            f"steps, KV {self.kv_cache_type} {self.kv_bytes / mib:.0f} MiB + compute "
            f"{self.compute_bytes / mib:.0f} MiB + embeddings {self.embedding_bytes / mib:.0f} MiB"
            + (f" + draft model {self.draft_bytes / mib:.0f} MiB" if self.draft_bytes else "")
            + f" + weights {self.weights_bytes / mib:.0f} MiB "
            f"of {self.budget.bytes / mib:.0f} MiB {self.budget.source} "
            f"({HEADROOM:.0%} kept free; chosen automatically: {chosen})"
            + ("" if self.fits else "; DOES NOT FIT: expect out-of-memory")
        )


def _usable(budget: Budget, shape: ModelShape) -> float:
    weights = shape.weights_bytes if budget.includes_weights else 0
    return budget.bytes * (1 - HEADROOM) - weights - PROCESS_BYTES


def plan_sizing(
    shape: ModelShape,
    budget: Budget,
    *,
    parallel: int,
    context_size: int,
    batch_size: int,
    kv_cache_type: str,
    gpu: bool,
    min_context: int = CONTEXT_MIN,
    reserved_bytes: int = 0,
    draft: ModelShape | None = None,
) -> SizingPlan:
    """Resolve `parallel` / `context_size` of 0 to the largest shape the budget holds.

    Explicit values are kept as they are (a plan that does not fit says so, it is the
    operator's call). `min_context` is the smallest context worth serving (the profile's
    maxTokens plus room for a prompt). A low budget gives a small plan, never none: one
    sequence of the smallest context is the floor. A little over 80 lines: one pass of
    arithmetic over the same budget, clearer read in order than split.
    """
    per_token = shape.kv_bytes_per_token(kv_cache_type)
    # `reserved_bytes` (the embedding context) comes off the budget before KV cells.
    usable = _usable(budget, shape) - reserved_bytes
    draft_bytes = 0
    if draft is not None:
        # A draft model (engine.draftModel) holds a cell for every cell of the target (in
        # per_token, so in kv_bytes), and its own weights and compute buffers.
        per_token += draft.kv_bytes_per_token(kv_cache_type)
        draft_bytes = (draft.weights_bytes if budget.includes_weights else 0) + (
            draft.compute_bytes(max(batch_size, 1), max(parallel, 1))
        )
        usable -= draft_bytes
    cap = PARALLEL_CAP_GPU if gpu else PARALLEL_CAP_CPU
    preferred = PARALLEL_PREFERRED_GPU if gpu else PARALLEL_PREFERRED_CPU
    target = min(shape.n_ctx_train, CONTEXT_TARGET_GPU if gpu else CONTEXT_TARGET_CPU)
    floor_ctx = max(min(CONTEXT_MIN, target), min_context)
    target = max(target, floor_ctx)

    def kv_room(n_seq: int) -> float:
        return usable - shape.compute_bytes(max(batch_size, n_seq), n_seq)

    def seqs_fitting(ctx: int) -> int:
        return min(cap, int(kv_room(cap) // (ctx * per_token))) if per_token else cap

    automatic: list[str] = []
    if parallel == 0 and context_size == 0:
        automatic = ["parallel", "contextSize"]
        ctx = target
        n_seq = seqs_fitting(ctx)
        # Halve the context for more sequences while fewer than the preferred count fit, down
        # to the floor of a useful chat; below that only if not even one sequence fits.
        while n_seq < preferred and ctx // 2 >= max(CONTEXT_FLOOR, floor_ctx):
            ctx //= 2
            n_seq = seqs_fitting(ctx)
        while n_seq < 1 and ctx // 2 >= floor_ctx:
            ctx //= 2
            n_seq = seqs_fitting(ctx)
        parallel, context_size = max(n_seq, 1), ctx
    elif parallel == 0:
        automatic = ["parallel"]
        parallel = max(seqs_fitting(context_size), 1)
    elif context_size == 0:
        automatic = ["contextSize"]
        ctx = target
        while ctx // 2 >= floor_ctx and parallel * ctx * per_token > kv_room(parallel):
            ctx //= 2
        context_size = ctx
    kv = int(parallel * context_size * per_token)
    compute = shape.compute_bytes(max(batch_size, parallel), parallel)
    return SizingPlan(
        parallel=parallel,
        context_size=context_size,
        batch_size=batch_size,
        kv_cache_type=kv_cache_type,
        kv_bytes=kv,
        compute_bytes=compute,
        weights_bytes=shape.weights_bytes,
        budget=budget,
        fits=kv + compute <= usable,
        automatic=tuple(automatic),
        embedding_bytes=reserved_bytes,
        draft_bytes=draft_bytes,
    )


def plan_for_settings(
    shape: ModelShape,
    budget: Budget,
    settings: EngineSettings,
    *,
    batch_size: int,
    gpu: bool,
    min_context: int,
    draft: ModelShape | None = None,
) -> SizingPlan:
    """plan_sizing with an engine.yaml section: what Engine.load and the operator both run.

    `batch_size` is the resolved engine.batchSize (0 already replaced by its default); one
    token per sequence always fits in a step, so the step is at least `parallel` tokens.
    """
    return plan_sizing(
        shape,
        budget,
        parallel=settings.parallel,
        context_size=settings.context_size,
        batch_size=max(batch_size, settings.parallel),
        kv_cache_type=settings.kv_cache_type,
        gpu=gpu,
        min_context=min_context,
        reserved_bytes=shape.embedding_bytes() if settings.embeddings else 0,
        draft=draft if settings.draft_tokens else None,
    )
