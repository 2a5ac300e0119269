"""Which CPU variant the server loads, from synthetic /proc/cpuinfo flag sets (engine/backends.py)."""

from __future__ import annotations

import pytest
from sentiric_inference.engine.backends import (
    X86_VARIANTS,
    BackendError,
    choose_cpu_variant,
    parse_cpu_flags,
)

BASE = {"sse4_2", "avx", "f16c", "fma", "bmi2"}
AVX2_ONLY = frozenset(BASE | {"avx2"})  # AMD EPYC Rome/Milan class, Intel Haswell-Skylake clients
AVX512_CORE = {"avx512f", "avx512cd", "avx512vl", "avx512dq", "avx512bw"}
# Intel Ice Lake server: AVX-512 with VBMI and VNNI, no BF16, no AMX.
ICELAKE = frozenset(AVX2_ONLY | AVX512_CORE | {"avx512vbmi", "avx512_vnni"})
# AMD EPYC Genoa (Zen 4): AVX-512 with BF16, no AMX.
ZEN4 = frozenset(ICELAKE | {"avx512_bf16"})
# Intel Sapphire Rapids / Emerald Rapids: everything above plus AMX (the machine that crashed).
SAPPHIRE_RAPIDS = frozenset(ZEN4 | {"avx_vnni", "amx_tile", "amx_int8", "amx_bf16"})
# An old or emulated CPU with no AVX at all.
NO_AVX = frozenset({"sse4_2"})
ALL = tuple(X86_VARIANTS)


@pytest.mark.parametrize(
    ("flags", "expected", "skipped"),
    [
        (SAPPHIRE_RAPIDS, "zen4", ("sapphirerapids",)),
        (ZEN4, "zen4", ()),
        (ICELAKE, "icelake", ()),
        (AVX2_ONLY, "haswell", ()),
        (frozenset(AVX2_ONLY | {"avx_vnni"}), "alderlake", ()),
        (NO_AVX, "sse42", ()),
        (frozenset(), "x64", ()),
    ],
    ids=["amx", "avx512-bf16", "avx512-no-bf16", "avx2-only", "avx-vnni", "no-avx", "bare"],
)
def test_best_safe_variant_for_each_cpu_class(
    flags: frozenset[str], expected: str, skipped: tuple[str, ...]
) -> None:
    choice = choose_cpu_variant(flags, ALL)
    assert choice.variant == expected
    assert choice.skipped_unsafe == skipped
    assert not choice.forced


def test_amx_variant_only_when_allowed() -> None:
    assert choose_cpu_variant(SAPPHIRE_RAPIDS, ALL, allow_amx=True).variant == "sapphirerapids"


def test_amx_is_never_picked_without_opt_in_whatever_the_build_has() -> None:
    # A build with only the AMX variant and the baseline must fall back to the baseline.
    assert choose_cpu_variant(SAPPHIRE_RAPIDS, ["x64", "sapphirerapids"]).variant == "x64"


def test_variants_the_cpu_cannot_run_are_never_chosen() -> None:
    # AVX-512 variants on an AVX2-only CPU would SIGILL: only what the flags allow is picked.
    choice = choose_cpu_variant(AVX2_ONLY, ["skylakex", "zen4", "haswell", "x64"])
    assert choice.variant == "haswell"


def test_partial_avx512_is_not_enough() -> None:
    # ggml's AVX512 level needs F, CD, VL, DQ and BW; a CPU with only avx512f stays on AVX2.
    assert choose_cpu_variant(frozenset(AVX2_ONLY | {"avx512f"}), ALL).variant == "haswell"


def test_forced_variant_is_taken_as_asked() -> None:
    choice = choose_cpu_variant(SAPPHIRE_RAPIDS, ALL, forced="haswell")
    assert (choice.variant, choice.forced) == ("haswell", True)


def test_forced_variant_missing_from_build_is_a_clear_error() -> None:
    with pytest.raises(BackendError, match="SENTIRIC_CPU_VARIANT=zen5 is not in this build"):
        choose_cpu_variant(ZEN4, ALL, forced="zen5")


def test_no_runnable_variant_is_a_clear_error() -> None:
    with pytest.raises(BackendError, match="no CPU backend variant"):
        choose_cpu_variant(AVX2_ONLY, ["zen4", "sapphirerapids"])


def test_parse_cpu_flags_reads_the_first_processor() -> None:
    text = "processor\t: 0\nmodel name\t: Xeon\nflags\t\t: fpu avx2 amx_tile\n\nprocessor\t: 1\n"
    assert parse_cpu_flags(text) == {"fpu", "avx2", "amx_tile"}
    assert parse_cpu_flags("processor : 0\nFeatures : neon\n") == frozenset()
