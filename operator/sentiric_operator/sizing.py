"""The profile's sizing plan, from the model's reported shape: status.plan and the memory request.

The download init container reports the GGUF's shape (layers, KV heads, head sizes...) in its
termination message; the status keeps it in `status.model.shape`. From it this module runs the
engine's own `plan_sizing` with the profile's settings, so `status.plan` shows what the pods
will pick and the serve container can request the memory that plan needs.

The budget is the spec's memory limit when there is one: that is the cgroup limit the server
plans against, so the operator's plan is the pod's. Without a limit the pod plans against its
node's free memory, which the operator cannot know; it plans against an unlimited budget, so
automatic settings take their caps. That is the most any pod of the profile will use (a pod
on a fuller node picks less), and it depends only on the spec and the shape, so the request
changes only when they do: never a rollout loop.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from sentiric_inference.engine.planning import default_batch_size
from sentiric_inference.engine.sizing import (
    PROCESS_BYTES,
    Budget,
    ModelShape,
    plan_for_settings,
)

from sentiric_operator.specs import Profile, ProfileSpec

# The room for a prompt on top of sampling.maxTokens that an automatic context keeps; the
# server's `sentiric_inference.app.MIN_PROMPT_ROOM` (not imported: app pulls in the web stack,
# which the operator's image does not install; a unit test keeps the two equal).
MIN_PROMPT_ROOM = 512
# "No memory limit": large enough that automatic settings take their caps.
UNLIMITED = Budget(1 << 50, "no memory limit")
# Host memory of a GPU pod besides its plan: the CUDA runtime and cuBLAS load ~0.5 GiB of
# host-side code and tables, and llama.cpp keeps the input embedding table on the CPU
# (0.2-0.4 GiB for Qwen 2.5 3B-7B at 4-5 bits per weight).
GPU_HOST_BYTES = 2**30
# The memory request is rounded up to this, so a small change in the estimate rarely moves it.
REQUEST_STEP = 64 * 2**20

# status.model.shape key -> ModelShape field.
SHAPE_KEYS = {
    "nLayer": "n_layer",
    "nHeadKv": "n_head_kv",
    "keyLength": "key_length",
    "valueLength": "value_length",
    "nEmbd": "n_embd",
    "nVocab": "n_vocab",
    "nCtxTrain": "n_ctx_train",
}
_IDENTITY = ("repo", "file", "revision")

_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?$")
_SUFFIX = {
    None: Decimal(1),
    "m": Decimal("0.001"),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
}


def parse_quantity(value: int | str) -> int:
    """Bytes in a Kubernetes quantity ("8Gi", "1.5G", "512M", "1e9", 1024), rounded up.

    The Kubernetes client has a parser, but only `kubeapi` may import the client, and this
    is pure arithmetic the builders need.
    """
    match = _QUANTITY.match(str(value).strip())
    if match is None:
        raise ValueError(f"not a Kubernetes quantity: {value!r}")
    try:
        number = Decimal(match.group(1)) * _SUFFIX[match.group(2)]
    except InvalidOperation as exc:
        raise ValueError(f"not a Kubernetes quantity: {value!r}") from exc
    return math.ceil(number)


def mebibytes_bytes(n_bytes: int) -> int:
    """`n_bytes` rounded up to a whole `REQUEST_STEP` (at least one)."""
    return max(1, math.ceil(n_bytes / REQUEST_STEP)) * REQUEST_STEP


def mebibytes(n_bytes: int) -> str:
    """A memory quantity for `n_bytes`, rounded up to a whole `REQUEST_STEP`."""
    return f"{mebibytes_bytes(n_bytes) // 2**20}Mi"


def _positive_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def shape_from_report(report: Mapping[str, Any]) -> dict[str, int] | None:
    """The `shape` of a download's termination message, if every number is there and sane."""
    shape = report.get("shape")
    if not isinstance(shape, Mapping):
        return None
    out = {key: _positive_int(shape.get(key)) for key in SHAPE_KEYS}
    if any(v is None for v in out.values()):
        return None
    return {k: v for k, v in out.items() if v is not None}


def same_model(profile: Profile, model_status: Mapping[str, Any]) -> bool:
    """Whether `status.model` describes the file the spec names now (not an earlier one)."""
    hf = profile.spec.model.hugging_face
    want = {"repo": hf.repo, "file": hf.file, "revision": hf.revision}
    return all(model_status.get(k) == want[k] for k in _IDENTITY)


def known_shape(profile: Profile, status: Mapping[str, Any]) -> ModelShape | None:
    """The model's shape as a status recorded it, if it is the spec's current model."""
    model = status.get("model")
    if not isinstance(model, Mapping) or not same_model(profile, model):
        return None
    return _reported_shape(model)


def draft_source(profile: Profile) -> dict[str, str] | None:
    """{repo, file, revision} of the Hub draft model the pods use, if any.

    A draft given as a `path` is a file the pod already has: the download does not fetch it,
    so nothing reports its shape and the memory request cannot count it (docs/kubernetes.md).
    """
    draft = profile.spec.engine.draft_model  # the spec refuses one with draftTokens 0
    hub = draft.hugging_face if draft is not None else None
    if hub is None:
        return None
    return {"repo": hub.repo, "file": hub.file, "revision": hub.revision}


def known_draft_shape(profile: Profile, status: Mapping[str, Any]) -> ModelShape | None:
    """engine.draftModel's shape as a status recorded it (status.model.draft), if the spec
    still names that file."""
    want = draft_source(profile)
    model = status.get("model")
    draft = model.get("draft") if isinstance(model, Mapping) else None
    if want is None or not isinstance(draft, Mapping):
        return None
    if any(draft.get(k) != want[k] for k in _IDENTITY):
        return None
    return _reported_shape(draft)


def _reported_shape(report: Mapping[str, Any]) -> ModelShape | None:
    shape = shape_from_report(report)
    weights = _positive_int(report.get("sizeBytes"))
    if shape is None or weights is None:
        return None
    return ModelShape(
        **{field: shape[key] for key, field in SHAPE_KEYS.items()}, weights_bytes=weights
    )


@dataclass(frozen=True, slots=True)
class PodPlan:
    """The engine's plan for one pod of the profile, and the memory it needs where."""

    parallel: int
    context_size: int
    batch_size: int
    kv_cache_type: str
    kv_bytes: int
    compute_bytes: int
    # The embedding context (engine.embeddings), counted with the pod's memory.
    embedding_bytes: int
    # engine.draftModel's weights and compute buffers (its KV cells are in kv_bytes).
    draft_bytes: int
    weights_bytes: int
    automatic: tuple[str, ...]
    fits: bool
    budget: Budget
    # Host memory of the serve container: the request the operator sets when the spec has none.
    memory_bytes: int
    # GPU memory the plan needs (None on a CPU profile).
    gpu_memory_bytes: int | None


def _gpu_fraction(spec: ProfileSpec, shape: ModelShape) -> float:
    """Share of the layers (weights and KV cells) that live on the GPU."""
    if spec.resources.gpu == 0:
        return 0.0
    layers = spec.engine.gpu_layers
    return 1.0 if layers < 0 or layers >= shape.n_layer else layers / shape.n_layer


def plan_for(spec: ProfileSpec, shape: ModelShape, *, draft: ModelShape | None = None) -> PodPlan:
    """What `Engine.load` will choose with this spec and model (see the module docstring);
    `draft` is engine.draftModel's shape, counted like the engine counts it."""
    engine = spec.engine
    gpu = spec.resources.gpu > 0
    batch = engine.batch_size or default_batch_size(gpu_offload=gpu)
    limit = spec.resources.limits.get("memory")
    if gpu:
        # The pod sizes its KV cache to the GPU's free memory, which only the pod can read.
        budget = Budget(UNLIMITED.bytes, "GPU memory, read by the pod", includes_weights=False)
    else:
        budget = UNLIMITED
        # The API server refuses a malformed quantity; a spec that slipped past plans unlimited.
        with contextlib.suppress(ValueError):
            if limit is not None:
                budget = Budget(parse_quantity(limit), f"memory limit {limit}")
    plan = plan_for_settings(
        shape,
        budget,
        engine,
        batch_size=batch,
        gpu=gpu,
        min_context=spec.sampling.max_tokens + MIN_PROMPT_ROOM,
        draft=draft,
    )
    on_gpu = _gpu_fraction(spec, shape)
    # The draft model's weights follow the same gpuLayers share; its KV cells are in kv_bytes.
    draft_weights = draft.weights_bytes if draft is not None else 0
    layered = plan.weights_bytes + plan.kv_bytes + draft_weights
    if gpu:
        # Weights and KV cells of offloaded layers are in GPU memory; the host keeps the
        # process, the CUDA runtime, the rest of the layers and the output buffers (counted
        # with the compute estimate, an upper bound for the host's share).
        memory = PROCESS_BYTES + GPU_HOST_BYTES + plan.compute_bytes + int(layered * (1 - on_gpu))
        gpu_memory: int | None = (
            int(layered * on_gpu) + plan.compute_bytes + plan.embedding_bytes + plan.draft_bytes
        )
    else:
        # Weights are mmapped: page cache that must stay resident for decoding speed.
        memory = plan.total_bytes
        gpu_memory = None
    return PodPlan(
        parallel=plan.parallel,
        context_size=plan.context_size,
        batch_size=plan.batch_size,
        kv_cache_type=plan.kv_cache_type,
        kv_bytes=plan.kv_bytes,
        compute_bytes=plan.compute_bytes,
        embedding_bytes=plan.embedding_bytes,
        draft_bytes=plan.draft_bytes + (draft_weights if gpu else 0),
        weights_bytes=plan.weights_bytes,
        automatic=plan.automatic,
        fits=plan.fits,
        budget=budget,
        memory_bytes=memory,
        gpu_memory_bytes=gpu_memory,
    )


def memory_request(
    spec: ProfileSpec, shape: ModelShape | None, *, draft: ModelShape | None = None
) -> str | None:
    """The serve container's memory request the operator sets, or None to set none.

    Only when the spec sets no `requests.memory` (a user's request is never overridden) and a
    download reported the shape (before, there is nothing to size from). A memory limit caps
    it, since the API server refuses a request above the limit; with auto sizing the plan
    stays below the limit anyway. Pods of a profile are never Guaranteed QoS (the download
    container requests less than its limit), so this request cannot change their QoS class.
    """
    if shape is None or "memory" in spec.resources.requests:
        return None
    needed = plan_for(spec, shape, draft=draft).memory_bytes
    limit = spec.resources.limits.get("memory")
    if limit is not None:
        with contextlib.suppress(ValueError):
            cap = parse_quantity(limit)
            if mebibytes_bytes(needed) > cap:
                return str(limit)
    return mebibytes(needed)


def _gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB"


def plan_status(
    spec: ProfileSpec, shape: ModelShape, *, draft: ModelShape | None = None
) -> dict[str, Any]:
    """`status.plan`: the numbers, and one line saying what they mean."""
    plan = plan_for(spec, shape, draft=draft)
    chosen = ", ".join(plan.automatic) or "none (all set in the spec)"
    parts = [
        f"{plan.parallel} sequences x {plan.context_size} tokens (automatic: {chosen}), "
        f"{plan.batch_size}-token steps, KV cache {plan.kv_cache_type} {_gib(plan.kv_bytes)}, "
        f"weights {_gib(plan.weights_bytes)}, compute {_gib(plan.compute_bytes)}"
        + (f", draft model {_gib(plan.draft_bytes)}" if plan.draft_bytes else "")
    ]
    if plan.gpu_memory_bytes is not None and plan.automatic:
        parts.append(
            f"at most {_gib(plan.gpu_memory_bytes)} of GPU memory (the caps: each pod sizes "
            f"automatic settings to its GPU's free memory) and {_gib(plan.memory_bytes)} of "
            "host memory"
        )
    elif plan.gpu_memory_bytes is not None:
        parts.append(
            f"needs {_gib(plan.gpu_memory_bytes)} of GPU memory and {_gib(plan.memory_bytes)} "
            "of host memory"
        )
    elif plan.budget is UNLIMITED:
        parts.append(
            f"needs {_gib(plan.memory_bytes)} with memory to spare; a pod on a node with less "
            "free memory picks a smaller plan at start"
        )
    else:
        parts.append(f"needs {_gib(plan.memory_bytes)} of the {plan.budget.source}")
    if not plan.fits:
        parts.append(
            "DOES NOT FIT: set engine.parallel / contextSize to 0 (automatic), lower them, use "
            "engine.kvCacheType q8_0, or raise resources.limits.memory"
        )
    status: dict[str, Any] = {
        "parallel": plan.parallel,
        "contextSize": plan.context_size,
        "batchSize": plan.batch_size,
        "kvCacheType": plan.kv_cache_type,
        "memoryBytes": plan.memory_bytes,
        "fits": plan.fits,
        "summary": "; ".join(parts),
    }
    if plan.gpu_memory_bytes is not None:
        status["gpuMemoryBytes"] = plan.gpu_memory_bytes
    request = memory_request(spec, shape, draft=draft)
    if request is not None:
        status["memoryRequest"] = request
    return status
