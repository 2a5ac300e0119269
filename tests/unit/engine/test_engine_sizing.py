"""Auto sizing over real GGUF shapes and memory budgets (engine/sizing.py)."""

from __future__ import annotations

import pytest
from sentiric_inference.engine.sizing import (
    CONTEXT_MIN,
    HEADROOM,
    PARALLEL_CAP_CPU,
    PARALLEL_CAP_GPU,
    Budget,
    ModelShape,
    SizingPlan,
    plan_sizing,
)

GiB = 2**30
MiB = 2**20

# Shapes as llama.cpp reads them from the GGUF metadata (Q4_K_M files; SmolLM2 is the Q4_1
# the embedded default ships).
SMOLLM2_135M = ModelShape(30, 3, 64, 64, 576, 49152, 8192, 98 * MiB)
QWEN25_1_5B = ModelShape(28, 2, 128, 128, 1536, 151936, 32768, 1066 * MiB)
QWEN25_3B = ModelShape(36, 2, 128, 128, 2048, 151936, 32768, 1930 * MiB)
QWEN25_7B = ModelShape(28, 4, 128, 128, 3584, 152064, 32768, 4468 * MiB)
SHAPES = {"smollm2-135m": SMOLLM2_135M, "qwen2.5-1.5b": QWEN25_1_5B}
SHAPES |= {"qwen2.5-3b": QWEN25_3B, "qwen2.5-7b": QWEN25_7B}


def cpu(gib: float) -> Budget:
    return Budget(int(gib * GiB), "cgroup memory limit")


def gpu(gib: float) -> Budget:
    return Budget(int(gib * GiB), "gpu free memory", includes_weights=False)


def auto(
    shape: ModelShape, budget: Budget, *, on_gpu: bool, kv: str = "f16", **kw: int
) -> SizingPlan:
    return plan_sizing(
        shape,
        budget,
        parallel=kw.get("parallel", 0),
        context_size=kw.get("context_size", 0),
        batch_size=512 if on_gpu else 64,
        kv_cache_type=kv,
        gpu=on_gpu,
        min_context=kw.get("min_context", CONTEXT_MIN),
    )


def test_kv_bytes_per_token_match_llama_cpp() -> None:
    # layers x kv heads x (k + v dims) x 2 bytes: what llama.cpp logs as "KV self size".
    assert QWEN25_3B.kv_bytes_per_token("f16") == 36 * 2 * 256 * 2  # 36 KiB
    assert QWEN25_7B.kv_bytes_per_token("f16") == 28 * 4 * 256 * 2  # 56 KiB
    assert QWEN25_7B.kv_bytes_per_token("q8_0") == pytest.approx(28 * 4 * 256 * 34 / 32)


@pytest.mark.parametrize("name", list(SHAPES))
@pytest.mark.parametrize(
    ("budget", "on_gpu"),
    [(cpu(2), False), (cpu(4), False), (cpu(16), False), (gpu(4), True), (gpu(22), True)],
    ids=["cpu-2g", "cpu-4g", "cpu-16g", "gpu-4g-free", "gpu-22g-free"],
)
def test_auto_plan_fits_and_stays_in_bounds(name: str, budget: Budget, on_gpu: bool) -> None:
    shape = SHAPES[name]
    plan = auto(shape, budget, on_gpu=on_gpu)
    cap = PARALLEL_CAP_GPU if on_gpu else PARALLEL_CAP_CPU
    assert 1 <= plan.parallel <= cap
    assert CONTEXT_MIN <= plan.context_size <= shape.n_ctx_train
    assert plan.automatic == ("parallel", "contextSize")
    weights_in_budget = shape.weights_bytes if budget.includes_weights else 0
    if budget.bytes * (1 - HEADROOM) > weights_in_budget + plan.compute_bytes + 300 * MiB:
        assert plan.fits, plan.describe()
        assert plan.total_bytes <= budget.bytes, plan.describe()
    else:
        # The weights alone do not fit: the smallest plan, flagged, instead of no server.
        assert (plan.parallel, plan.context_size) == (1, CONTEXT_MIN)
        assert not plan.fits
        assert "DOES NOT FIT" in plan.describe()


@pytest.mark.parametrize("name", list(SHAPES))
def test_more_memory_never_gives_a_smaller_plan(name: str) -> None:
    shape = SHAPES[name]
    plans = [auto(shape, cpu(g), on_gpu=False) for g in (1, 2, 3, 4, 6, 8, 12, 16, 32, 64)]
    cells = [p.parallel * p.context_size for p in plans]
    assert cells == sorted(cells)


def test_big_gpu_gets_many_sequences_at_full_target_context() -> None:
    plan = auto(QWEN25_3B, gpu(60), on_gpu=True)
    assert (plan.parallel, plan.context_size) == (PARALLEL_CAP_GPU, 8192)


def test_low_memory_cpu_picks_a_small_plan_and_loads() -> None:
    # 3B on a 2.8 GiB pod: the weights take most of it; a small KV cache must still fit.
    plan = auto(QWEN25_3B, cpu(2.8), on_gpu=False)
    assert plan.fits
    assert plan.parallel >= 1
    assert plan.context_size < 4096


def test_quantized_kv_cache_holds_more_sequences() -> None:
    f16 = auto(QWEN25_7B, gpu(3), on_gpu=True)
    q8 = auto(QWEN25_7B, gpu(3), on_gpu=True, kv="q8_0")
    q4 = auto(QWEN25_7B, gpu(3), on_gpu=True, kv="q4_0")
    assert f16.parallel * f16.context_size < q8.parallel * q8.context_size
    assert q8.parallel * q8.context_size < q4.parallel * q4.context_size


def test_explicit_settings_are_kept_even_when_they_do_not_fit() -> None:
    plan = auto(QWEN25_7B, cpu(6), on_gpu=False, parallel=16, context_size=32768)
    assert (plan.parallel, plan.context_size, plan.automatic) == (16, 32768, ())
    assert not plan.fits


def test_only_parallel_automatic_keeps_the_context() -> None:
    plan = auto(QWEN25_1_5B, cpu(8), on_gpu=False, context_size=4096)
    assert plan.context_size == 4096
    assert plan.automatic == ("parallel",)
    assert plan.fits and plan.parallel >= 4


def test_only_context_automatic_keeps_parallel() -> None:
    plan = auto(QWEN25_3B, cpu(4), on_gpu=False, parallel=8)
    assert plan.parallel == 8
    assert plan.automatic == ("contextSize",)
    assert plan.fits


def test_min_context_is_respected() -> None:
    plan = auto(QWEN25_3B, cpu(2.2), on_gpu=False, min_context=1536)
    assert plan.context_size >= 1536


def test_context_never_exceeds_what_the_model_was_trained_on() -> None:
    short = ModelShape(30, 3, 64, 64, 576, 49152, 2048, 98 * MiB)
    assert auto(short, gpu(40), on_gpu=True).context_size == 2048


def test_shape_from_gguf_metadata() -> None:
    meta = {
        "general.architecture": "qwen2",
        "qwen2.block_count": "36",
        "qwen2.embedding_length": "2048",
        "qwen2.attention.head_count": "16",
        "qwen2.attention.head_count_kv": "2",
        "qwen2.context_length": "32768",
    }
    shape = ModelShape.from_metadata(meta, n_vocab=151936, weights_bytes=1930 * MiB)
    assert shape == QWEN25_3B
    with pytest.raises(ValueError, match="GGUF metadata has no qwen2"):
        ModelShape.from_metadata({"general.architecture": "qwen2"}, n_vocab=1, weights_bytes=1)


def test_the_embedding_context_is_counted_in_the_plan_and_free_when_off() -> None:
    from sentiric_inference.config import EngineSettings
    from sentiric_inference.engine.sizing import plan_for_settings

    shape = QWEN25_3B
    # 512 KV cells plus a 512-token micro-batch whose every row is an output.
    assert shape.embedding_bytes() == 512 * shape.kv_bytes_per_token("f16") + (
        shape.compute_bytes(512, 512)
    )
    budget = cpu(4)
    on = plan_for_settings(
        shape,
        budget,
        EngineSettings(parallel=0, context_size=0),
        batch_size=64,
        gpu=False,
        min_context=CONTEXT_MIN,
    )
    off = plan_for_settings(
        shape,
        budget,
        EngineSettings(parallel=0, context_size=0, embeddings=False),
        batch_size=64,
        gpu=False,
        min_context=CONTEXT_MIN,
    )
    assert on.embedding_bytes == shape.embedding_bytes() and off.embedding_bytes == 0
    assert on.total_bytes - on.kv_bytes == off.total_bytes - off.kv_bytes + on.embedding_bytes
    # The reservation comes out of the KV cells an automatic plan may take.
    assert on.parallel * on.context_size <= off.parallel * off.context_size
    assert "embeddings" in on.describe()


QWEN25_0_5B = ModelShape(24, 2, 64, 64, 896, 151936, 32768, 398 * MiB)


def test_a_draft_model_is_counted_in_the_plan() -> None:
    # Qwen2.5-0.5B drafting for 3B on a 4 GiB CPU pod: its weights and compute come off the
    # budget and each cell costs both models' KV, so fewer sequences fit than without it.
    args = {
        "parallel": 0,
        "context_size": 4096,
        "batch_size": 64,
        "kv_cache_type": "f16",
        "gpu": False,
    }
    alone = plan_sizing(QWEN25_3B, cpu(4), **args)  # type: ignore[arg-type]
    drafted = plan_sizing(QWEN25_3B, cpu(4), **args, draft=QWEN25_0_5B)  # type: ignore[arg-type]
    assert drafted.parallel < alone.parallel
    per_token = QWEN25_3B.kv_bytes_per_token("f16") + QWEN25_0_5B.kv_bytes_per_token("f16")
    assert drafted.kv_bytes == int(drafted.parallel * 4096 * per_token)
    assert drafted.draft_bytes >= QWEN25_0_5B.weights_bytes
    assert drafted.total_bytes <= cpu(4).bytes
    assert "draft model" in drafted.describe() and "draft model" not in alone.describe()
