"""The CPU path this machine takes serves real work, and automatic sizing loads and fits.

Whatever the test machine's CPU (AMD EPYC with AVX2, Intel Xeon with AVX-512 and AMX), the
engine loads the variant engine/backends.py picks and runs prompt chunks, batched decode and
sampling on it. On an AMX Xeon this is the test that crashed the process before the choice
left the AMX kernels out.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from engine_helpers import EngineFactory, collect, sample_value
from sentiric_inference.engine.backends import (
    UNSAFE_FEATURES,
    X86_VARIANTS,
    choose_cpu_variant,
    llama_cpp_lib_dir,
    parse_cpu_flags,
)
from sentiric_inference.engine.native import init_backend
from sentiric_inference.engine.types import GenerationRequest, SamplingParams
from sentiric_inference.metrics import Metrics


def _cpu_flags() -> frozenset[str]:
    return parse_cpu_flags(Path("/proc/cpuinfo").read_text())


def test_loaded_variant_is_the_safe_choice_for_this_cpu() -> None:
    backends = init_backend()
    built = [p.name[len("libggml-cpu-") : -3] for p in llama_cpp_lib_dir().glob("libggml-cpu-*.so")]
    if built:  # a GGML_BACKEND_DL build (the default): the variant is ours to choose
        expected = choose_cpu_variant(_cpu_flags(), built)
        assert backends.cpu_variant == expected.variant
        assert not X86_VARIANTS.get(backends.cpu_variant, frozenset()) & UNSAFE_FEATURES
    else:  # a native build: the AMX buffer type must be off where the CPU has AMX
        assert backends.cpu_variant == "builtin"
    assert backends.cpu_features, "ggml reports the features of the loaded CPU backend"
    if "amx_int8" in _cpu_flags():
        assert backends.use_extra_bufts is False or backends.cpu_variant != "sapphirerapids"


async def test_prompt_chunks_batched_decode_and_sampling_on_this_cpu(
    make_engine: EngineFactory, smollm2_path: Path
) -> None:
    # 16-token steps: each ~150-token prompt takes ~10 chunks; four sequences decode together.
    metrics = Metrics()
    engine = await make_engine(smollm2_path, metrics=metrics, parallel=4, batch_size=16)
    text = "The quick brown fox jumps over the lazy dog. " * 15
    prompts = [tuple(engine.tokenize(f"{i}: {text}")) for i in range(4)]
    assert all(len(p) > 100 for p in prompts)
    greedy = SamplingParams(temperature=0.0, max_tokens=12, seed=1)
    sampled = SamplingParams(temperature=0.9, top_k=40, top_p=0.9, max_tokens=12, seed=7)
    requests = [
        GenerationRequest(p, greedy if i % 2 == 0 else sampled, f"r{i}")
        for i, p in enumerate(prompts)
    ]
    outs = await asyncio.gather(*(collect(engine.submit(r)) for r in requests))
    for out in outs:
        assert out.finished is not None
        assert out.finished.reason in ("length", "stop")
        assert out.finished.completion_tokens >= 1
    # Real text came out of the model (SmolLM2 continues English), not an empty or error run.
    assert any(out.text.strip() for out in outs)
    # The same greedy request again gives the same tokens: the kernels are deterministic.
    again = await collect(engine.submit(GenerationRequest(prompts[0], greedy, "again")))
    assert again.text == outs[0].text
    # More prompt tokens than one step holds went through: prompt chunking really happened.
    assert sample_value(metrics, "sentiric_llm_prompt_tokens_total") >= sum(map(len, prompts))


async def test_automatic_sizing_loads_a_plan_that_fits(
    make_engine: EngineFactory, smollm2_path: Path
) -> None:
    metrics = Metrics()
    engine = await make_engine(smollm2_path, metrics=metrics, parallel=0, context_size=0)
    plan = engine.plan
    assert plan is not None
    assert plan.automatic == ("parallel", "contextSize")
    assert plan.fits, plan.describe()
    assert plan.parallel >= 1 and plan.context_size >= 256
    info = engine.info
    assert (info.parallel, info.context_size) == (plan.parallel, plan.context_size)
    assert engine.stats().kv_cells_total >= plan.parallel * plan.context_size
    assert sample_value(metrics, "sentiric_llm_sequences_max") == plan.parallel
    labels = metrics.registry.get_sample_value(
        "sentiric_llm_build_info",
        {
            "cpu_variant": init_backend().cpu_variant,
            "gpu": "none",
            "extra_buffer_types": "on" if init_backend().use_extra_bufts else "off",
            "llama_cpp_python": "0.3.36",
        },
    )
    assert labels == 1.0
    tokens = tuple(engine.tokenize("Hello, my name is"))
    out = await collect(
        engine.submit(GenerationRequest(tokens, SamplingParams(temperature=0, max_tokens=4), "a"))
    )
    assert out.finished is not None and out.finished.completion_tokens >= 1


async def test_quantized_kv_cache_serves(make_engine: EngineFactory, smollm2_path: Path) -> None:
    engine = await make_engine(smollm2_path, parallel=2, context_size=512, kv_cache_type="q8_0")
    tokens = tuple(engine.tokenize("Once upon a time"))
    out = await collect(
        engine.submit(GenerationRequest(tokens, SamplingParams(temperature=0, max_tokens=6), "q"))
    )
    assert out.finished is not None and out.finished.completion_tokens >= 1
