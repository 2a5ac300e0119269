"""sizing: the profile's plan from a reported model shape, the memory request, quantities."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
from operator_samples import profile
from sentiric_inference.engine.sizing import PROCESS_BYTES, Budget, ModelShape, plan_sizing
from sentiric_operator.sizing import (
    GPU_HOST_BYTES,
    MIN_PROMPT_ROOM,
    UNLIMITED,
    known_draft_shape,
    known_shape,
    mebibytes,
    memory_request,
    parse_quantity,
    plan_for,
    plan_status,
    shape_from_report,
)

ROOT = Path(__file__).resolve().parents[3]
MiB, GiB = 2**20, 2**30

# Qwen2.5-3B-Instruct Q4_K_M as its GGUF header describes it.
QWEN_3B = ModelShape(
    n_layer=36,
    n_head_kv=2,
    key_length=128,
    value_length=128,
    n_embd=2048,
    n_vocab=151936,
    n_ctx_train=32768,
    weights_bytes=1_929_903_264,
)
SHAPE_REPORT = {
    "nLayer": 36,
    "nHeadKv": 2,
    "keyLength": 128,
    "valueLength": 128,
    "nEmbd": 2048,
    "nVocab": 151936,
    "nCtxTrain": 32768,
}
AUTO = {"engine": {"parallel": 0, "contextSize": 0}}


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [
        ("8Gi", 8 * GiB),
        ("512Mi", 512 * MiB),
        ("1.5Gi", 3 * GiB // 2),
        ("2G", 2 * 10**9),
        ("500M", 500 * 10**6),
        ("128k", 128_000),
        ("1e9", 10**9),
        ("1E3", 1000),
        (1073741824, GiB),
        ("1073741824", GiB),
        ("100m", 1),  # a tenth of a byte, rounded up
    ],
)
def test_parse_quantity(quantity: int | str, expected: int) -> None:
    assert parse_quantity(quantity) == expected


@pytest.mark.parametrize("quantity", ["lots", "8GB", "Gi", "", "1.2.3Mi"])
def test_parse_quantity_refuses_what_kubernetes_refuses(quantity: str) -> None:
    with pytest.raises(ValueError, match="not a Kubernetes quantity"):
        parse_quantity(quantity)


@pytest.mark.parametrize(
    ("n_bytes", "expected"),
    [(1, "64Mi"), (64 * MiB, "64Mi"), (64 * MiB + 1, "128Mi"), (3 * GiB + 1, "3136Mi")],
)
def test_memory_is_requested_in_whole_64_mib_steps(n_bytes: int, expected: str) -> None:
    assert mebibytes(n_bytes) == expected


def test_prompt_room_is_the_servers() -> None:
    # sentiric_inference.app imports the web stack, which the operator image lacks: read it.
    tree = ast.parse((ROOT / "inference" / "sentiric_inference" / "app.py").read_text())
    values = [
        node.value.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "MIN_PROMPT_ROOM" for t in node.targets)
        and isinstance(node.value, ast.Constant)
    ]
    assert values == [MIN_PROMPT_ROOM]


def test_plan_is_the_engines_plan_for_the_same_inputs() -> None:
    spec = profile({**AUTO, "resources": {"limits": {"memory": "6Gi"}}}).spec
    ours = plan_for(spec, QWEN_3B)
    engine = plan_sizing(
        QWEN_3B,
        Budget(6 * GiB, "cgroup memory limit"),
        parallel=0,
        context_size=0,
        batch_size=64,  # the CPU default of engine.batchSize 0
        kv_cache_type="f16",
        gpu=False,
        min_context=spec.sampling.max_tokens + MIN_PROMPT_ROOM,
        reserved_bytes=QWEN_3B.embedding_bytes(),  # engine.embeddings is on by default
    )
    assert (ours.parallel, ours.context_size, ours.batch_size, ours.kv_bytes) == (
        engine.parallel,
        engine.context_size,
        engine.batch_size,
        engine.kv_bytes,
    )
    assert ours.memory_bytes == engine.total_bytes
    assert ours.fits and ours.automatic == ("parallel", "contextSize")


def test_cpu_without_limit_plans_the_caps_and_requests_their_memory() -> None:
    spec = profile(AUTO).spec
    plan = plan_for(spec, QWEN_3B)
    assert plan.budget is UNLIMITED
    # The CPU caps: 8 sequences of min(trained, 4096) tokens.
    assert (plan.parallel, plan.context_size) == (8, 4096)
    kv_per_token = 36 * 2 * (128 + 128) * 2
    assert plan.kv_bytes == 8 * 4096 * kv_per_token
    assert plan.embedding_bytes == QWEN_3B.embedding_bytes() > 0
    assert plan.memory_bytes == (
        QWEN_3B.weights_bytes
        + plan.kv_bytes
        + plan.compute_bytes
        + plan.embedding_bytes
        + PROCESS_BYTES
    )
    assert memory_request(spec, QWEN_3B) == mebibytes(plan.memory_bytes)
    assert plan.gpu_memory_bytes is None


@pytest.mark.parametrize("limit", ["3Gi", "2560Mi", "2200Mi", "1Gi"])
def test_low_memory_limit_picks_a_small_plan_never_none(limit: str) -> None:
    spec = profile({**AUTO, "resources": {"limits": {"memory": limit}}}).spec
    plan = plan_for(spec, QWEN_3B)
    roomy = plan_for(profile(AUTO).spec, QWEN_3B)
    assert plan.parallel >= 1
    assert plan.context_size >= spec.sampling.max_tokens + MIN_PROMPT_ROOM
    assert plan.parallel * plan.context_size < roomy.parallel * roomy.context_size
    if plan.fits:
        assert plan.memory_bytes <= parse_quantity(limit)


def test_explicit_settings_that_do_not_fit_say_so() -> None:
    spec = profile(
        {
            "engine": {"parallel": 32, "contextSize": 32768},
            "resources": {"limits": {"memory": "4Gi"}},
        }
    ).spec
    plan = plan_for(spec, QWEN_3B)
    assert (plan.parallel, plan.context_size, plan.automatic) == (32, 32768, ())
    assert not plan.fits
    status = plan_status(spec, QWEN_3B)
    assert status["fits"] is False and "DOES NOT FIT" in status["summary"]


def test_quantized_kv_cache_halves_the_kv_bytes() -> None:
    f16 = plan_for(profile().spec, QWEN_3B)
    q8 = plan_for(profile({"engine": {"kvCacheType": "q8_0"}}).spec, QWEN_3B)
    assert q8.kv_bytes == pytest.approx(f16.kv_bytes * 34 / 64, rel=1e-6)


def test_gpu_profile_requests_host_memory_without_the_weights() -> None:
    spec = profile({**AUTO, "resources": {"gpu": 1}}).spec
    plan = plan_for(spec, QWEN_3B)
    # GPU caps: 32 sequences of min(trained, 8192) tokens; every layer on the GPU.
    assert (plan.parallel, plan.context_size, plan.batch_size) == (32, 8192, 512)
    assert plan.memory_bytes == PROCESS_BYTES + GPU_HOST_BYTES + plan.compute_bytes
    assert plan.gpu_memory_bytes == (
        QWEN_3B.weights_bytes + plan.kv_bytes + plan.compute_bytes + plan.embedding_bytes
    )
    # On a CPU the same plan would hold 11 GiB of weights and KV cells in host memory.
    assert plan.memory_bytes < (QWEN_3B.weights_bytes + plan.kv_bytes) / 5


def test_partial_offload_keeps_the_rest_of_the_layers_in_host_memory() -> None:
    full = plan_for(profile({"resources": {"gpu": 1}}).spec, QWEN_3B)
    half = plan_for(profile({"resources": {"gpu": 1}, "engine": {"gpuLayers": 18}}).spec, QWEN_3B)
    layered = QWEN_3B.weights_bytes + half.kv_bytes
    assert half.memory_bytes - full.memory_bytes == pytest.approx(layered / 2, abs=1)
    assert full.gpu_memory_bytes is not None and half.gpu_memory_bytes is not None
    assert half.gpu_memory_bytes == pytest.approx(full.gpu_memory_bytes - layered / 2, abs=1)


@pytest.mark.parametrize(
    ("resources", "expected"),
    [
        ({}, True),
        ({"requests": {"cpu": "2"}}, True),
        ({"requests": {"memory": "2Gi"}}, False),
        ({"limits": {"memory": "8Gi"}}, True),
    ],
)
def test_memory_request_only_when_the_spec_sets_no_memory(
    resources: dict[str, Any], expected: bool
) -> None:
    spec = profile({"resources": resources}).spec
    assert (memory_request(spec, QWEN_3B) is not None) is expected
    assert memory_request(spec, None) is None


def _model_status(**override: Any) -> dict[str, Any]:
    p = profile()
    hf = p.spec.model.hugging_face
    base = {
        "repo": hf.repo,
        "file": hf.file,
        "revision": hf.revision,
        "sizeBytes": QWEN_3B.weights_bytes,
        "shape": dict(SHAPE_REPORT),
    }
    return {"model": {**base, **override}}


def test_known_shape_only_for_the_specs_current_model() -> None:
    p = profile()
    assert known_shape(p, _model_status()) == QWEN_3B
    assert known_shape(p, _model_status(file="other.gguf")) is None
    assert known_shape(p, _model_status(revision="v2")) is None
    assert known_shape(p, {"model": {**_model_status()["model"], "sizeBytes": None}}) is None
    assert known_shape(p, {}) is None


@pytest.mark.parametrize(
    "shape",
    [
        None,
        "36 layers",
        {k: v for k, v in SHAPE_REPORT.items() if k != "nVocab"},
        {**SHAPE_REPORT, "nLayer": 0},
        {**SHAPE_REPORT, "nLayer": "36"},
        {**SHAPE_REPORT, "nLayer": True},
    ],
    ids=["absent", "not an object", "missing key", "zero", "string", "bool"],
)
def test_a_malformed_shape_report_is_ignored(shape: Any) -> None:
    assert shape_from_report({"shape": shape}) is None


def test_plan_status_summarises_the_plan() -> None:
    status = plan_status(profile(AUTO).spec, QWEN_3B)
    assert {k: status[k] for k in ("parallel", "contextSize", "batchSize", "kvCacheType")} == {
        "parallel": 8,
        "contextSize": 4096,
        "batchSize": 64,
        "kvCacheType": "f16",
    }
    assert status["memoryRequest"] == mebibytes(status["memoryBytes"])
    assert "8 sequences x 4096 tokens (automatic: parallel, contextSize)" in status["summary"]
    assert "picks a smaller plan" in status["summary"]
    gpu = plan_status(profile({"resources": {"gpu": 1}}).spec, QWEN_3B)
    assert gpu["gpuMemoryBytes"] > gpu["memoryBytes"]
    assert "automatic: none" in gpu["summary"] and "needs" in gpu["summary"]
    gpu_auto = plan_status(profile({**AUTO, "resources": {"gpu": 1}}).spec, QWEN_3B)
    assert "at most" in gpu_auto["summary"] and "GPU's free memory" in gpu_auto["summary"]
    limited = plan_status(profile({"resources": {"limits": {"memory": "6Gi"}}}).spec, QWEN_3B)
    assert "of the memory limit 6Gi" in limited["summary"]
    assert parse_quantity(limited["memoryRequest"]) < 6 * GiB


# Qwen2.5-0.5B-Instruct Q4_K_M, the draft model docs/kubernetes.md suggests for 3B/7B.
QWEN_05B = ModelShape(
    n_layer=24,
    n_head_kv=2,
    key_length=64,
    value_length=64,
    n_embd=896,
    n_vocab=151936,
    n_ctx_train=32768,
    weights_bytes=491_400_032,
)
DRAFT_HUB = {"repo": "Qwen/Qwen2.5-0.5B-Instruct-GGUF", "file": "qwen2.5-0.5b-instruct-q4_k_m.gguf"}
DRAFTING = {"engine": {"draftTokens": 4, "draftModel": {"huggingFace": DRAFT_HUB}}}


def _draft_report(**override: Any) -> dict[str, Any]:
    report = {
        **DRAFT_HUB,
        "revision": "main",
        "sizeBytes": QWEN_05B.weights_bytes,
        "shape": {
            "nLayer": 24,
            "nHeadKv": 2,
            "keyLength": 64,
            "valueLength": 64,
            "nEmbd": 896,
            "nVocab": 151936,
            "nCtxTrain": 32768,
        },
    }
    return {**report, **override}


def test_a_draft_model_is_counted_as_the_engine_counts_it() -> None:
    spec = profile({**DRAFTING, "engine": {**DRAFTING["engine"], "parallel": 4}}).spec
    plain, drafted = plan_for(spec, QWEN_3B), plan_for(spec, QWEN_3B, draft=QWEN_05B)
    engine = plan_sizing(
        QWEN_3B,
        UNLIMITED,
        parallel=4,
        context_size=0,
        batch_size=64,
        kv_cache_type="f16",
        gpu=False,
        min_context=spec.sampling.max_tokens + MIN_PROMPT_ROOM,
        reserved_bytes=QWEN_3B.embedding_bytes(),
        draft=QWEN_05B,
    )
    assert drafted.memory_bytes == engine.total_bytes
    # Its weights, compute buffers and a KV cell per cell of the target's.
    assert drafted.memory_bytes - plain.memory_bytes > QWEN_05B.weights_bytes
    assert drafted.draft_bytes > QWEN_05B.weights_bytes and plain.draft_bytes == 0
    assert memory_request(spec, QWEN_3B, draft=QWEN_05B) != memory_request(spec, QWEN_3B)
    assert "draft model" in plan_status(spec, QWEN_3B, draft=QWEN_05B)["summary"]


def test_a_gpu_profile_puts_the_draft_weights_in_gpu_memory() -> None:
    spec = profile({**DRAFTING, "resources": {"gpu": 1}}).spec
    plain, drafted = plan_for(spec, QWEN_3B), plan_for(spec, QWEN_3B, draft=QWEN_05B)
    assert plain.gpu_memory_bytes is not None and drafted.gpu_memory_bytes is not None
    assert drafted.gpu_memory_bytes - plain.gpu_memory_bytes > QWEN_05B.weights_bytes


def test_known_draft_shape_only_for_the_specs_hub_draft() -> None:
    drafting = profile(DRAFTING)
    status = {"model": {**_model_status()["model"], "draft": _draft_report()}}
    assert known_draft_shape(drafting, status) == QWEN_05B
    # Another draft file, no draft in the spec, a local path: nothing to count.
    moved = {"model": {**status["model"], "draft": _draft_report(file="other.gguf")}}
    assert known_draft_shape(drafting, moved) is None
    assert known_draft_shape(profile(), status) is None
    local = profile({"engine": {"draftTokens": 4, "draftModel": {"path": "/models/d.gguf"}}})
    assert known_draft_shape(local, status) is None
    assert known_draft_shape(drafting, _model_status()) is None
