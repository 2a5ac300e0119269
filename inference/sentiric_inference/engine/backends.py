"""Which llama.cpp backends this process loads: the best safe CPU variant, and any GPU backend.

The wheel is built with GGML_BACKEND_DL + GGML_CPU_ALL_VARIANTS (hack/llama-wheel.sh): one
CPU backend module per x86 level (`libggml-cpu-haswell.so`, `-icelake`, `-zen4`, ...), so one
image runs the fastest kernels a node supports and none it does not (a single native build
SIGILLs on an older CPU). llama.cpp's own loader takes the highest-scoring module, which on
Intel Xeons with AMX is `sapphirerapids`: its AMX matrix multiply faults on the first request
(llama.cpp #20824). So the choice is made here, with AMX variants left out unless
SENTIRIC_ALLOW_AMX=1 asks for them, and for builds with the CPU backend linked in (a native
build) the AMX buffer type is switched off instead (`Backends.use_extra_bufts`).

Environment (for operators chasing a CPU problem, and for bench/cpu_paths.py):
  SENTIRIC_CPU_VARIANT=<name>  load exactly this variant (e.g. `haswell`);
  SENTIRIC_ALLOW_AMX=1         let AMX variants and the AMX buffer type be chosen;
  SENTIRIC_NO_REPACK=1         load weights without llama.cpp's repacked layouts at all.
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import importlib.metadata
import logging
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

# /proc/cpuinfo flag names that ggml checks for each of its feature names.
_AVX512 = frozenset({"avx512f", "avx512cd", "avx512vl", "avx512dq", "avx512bw"})
_FEATURE_FLAGS: Mapping[str, frozenset[str]] = {
    "SSE42": frozenset({"sse4_2"}),
    "AVX": frozenset({"avx"}),
    "F16C": frozenset({"f16c"}),
    "FMA": frozenset({"fma"}),
    "AVX2": frozenset({"avx2"}),
    "BMI2": frozenset({"bmi2"}),
    "AVX_VNNI": frozenset({"avx_vnni"}),
    "AVX512": _AVX512,
    "AVX512_VBMI": frozenset({"avx512vbmi"}),
    "AVX512_VNNI": frozenset({"avx512_vnni"}),
    "AVX512_BF16": frozenset({"avx512_bf16"}),
    "AMX_TILE": frozenset({"amx_tile"}),
    "AMX_INT8": frozenset({"amx_int8"}),
}
# ggml's own ranking (ggml-cpu/arch/x86/cpu-feats.cpp): the variant with the highest sum wins.
_FEATURE_WEIGHTS: Mapping[str, int] = {
    "FMA": 1,
    "F16C": 2,
    "SSE42": 4,
    "BMI2": 8,
    "AVX": 16,
    "AVX2": 32,
    "AVX_VNNI": 64,
    "AVX512": 128,
    "AVX512_VBMI": 256,
    "AVX512_BF16": 512,
    "AVX512_VNNI": 1024,
    "AMX_INT8": 2048,
}
# The x86 variants GGML_CPU_ALL_VARIANTS builds (ggml/src/CMakeLists.txt), by ggml feature.
X86_VARIANTS: Mapping[str, frozenset[str]] = {
    "x64": frozenset(),
    "sse42": frozenset({"SSE42"}),
    "sandybridge": frozenset({"SSE42", "AVX"}),
    "ivybridge": frozenset({"SSE42", "AVX", "F16C"}),
    "piledriver": frozenset({"SSE42", "AVX", "F16C", "FMA"}),
    "haswell": frozenset({"SSE42", "AVX", "F16C", "FMA", "AVX2", "BMI2"}),
    "skylakex": frozenset({"SSE42", "AVX", "F16C", "FMA", "AVX2", "BMI2", "AVX512"}),
    "cannonlake": frozenset(
        {"SSE42", "AVX", "F16C", "FMA", "AVX2", "BMI2", "AVX512", "AVX512_VBMI"}
    ),
    "cascadelake": frozenset(
        {"SSE42", "AVX", "F16C", "FMA", "AVX2", "BMI2", "AVX512", "AVX512_VNNI"}
    ),
    "icelake": frozenset(
        {"SSE42", "AVX", "F16C", "FMA", "AVX2", "BMI2", "AVX512", "AVX512_VBMI", "AVX512_VNNI"}
    ),
    "cooperlake": frozenset(
        {"SSE42", "AVX", "F16C", "FMA", "AVX2", "BMI2", "AVX512", "AVX512_VNNI", "AVX512_BF16"}
    ),
    "zen4": frozenset(
        {"SSE42", "AVX", "F16C", "FMA", "AVX2", "BMI2", "AVX512"}
        | {"AVX512_VBMI", "AVX512_VNNI", "AVX512_BF16"}
    ),
    "alderlake": frozenset({"SSE42", "AVX", "F16C", "FMA", "AVX2", "BMI2", "AVX_VNNI"}),
    "sapphirerapids": frozenset(
        {"SSE42", "AVX", "F16C", "FMA", "AVX2", "BMI2", "AVX512", "AVX512_VBMI"}
        | {"AVX512_VNNI", "AVX512_BF16", "AMX_TILE", "AMX_INT8"}
    ),
}
# Kernels known to fault: llama.cpp's AMX matmul (ldtilecfg in ggml_backend_amx_mul_mat).
UNSAFE_FEATURES = frozenset({"AMX_TILE", "AMX_INT8"})
# GPU backend modules a CUDA (or other GPU) build ships beside the CPU variants.
_GPU_MODULES = ("cuda", "hip", "vulkan", "sycl", "musa")
_CPU_MODULE = re.compile(r"^libggml-cpu-(?P<variant>.+)\.so$")


class BackendError(RuntimeError):
    """No usable CPU backend could be loaded (a broken install, or a forced variant missing)."""


def parse_cpu_flags(cpuinfo: str) -> frozenset[str]:
    """The `flags` of the first processor in /proc/cpuinfo text (empty off x86 Linux)."""
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


def variant_supported(variant: str, flags: frozenset[str]) -> bool:
    features = X86_VARIANTS.get(variant)
    if features is None:
        return False
    return all(_FEATURE_FLAGS[f] <= flags for f in features)


def variant_score(variant: str) -> int:
    return 1 + sum(_FEATURE_WEIGHTS.get(f, 0) for f in X86_VARIANTS[variant])


@dataclass(frozen=True, slots=True)
class CpuChoice:
    """The CPU variant to load, and the faster ones left out because they are unsafe."""

    variant: str
    skipped_unsafe: tuple[str, ...] = ()
    forced: bool = False


def choose_cpu_variant(
    flags: frozenset[str],
    available: Iterable[str],
    *,
    forced: str | None = None,
    allow_amx: bool = False,
) -> CpuChoice:
    """Pick the highest-ranked variant this CPU runs, leaving out unsafe (AMX) ones.

    `available` are the variant modules the install has. A forced variant is taken as asked
    (the caller still checks ggml's own score before loading it).
    """
    names = sorted(set(available))
    if forced:
        if forced not in names:
            raise BackendError(
                f"SENTIRIC_CPU_VARIANT={forced} is not in this build (it has: {', '.join(names)})"
            )
        return CpuChoice(forced, forced=True)
    runnable = [v for v in names if variant_supported(v, flags)]
    unsafe = {v for v in runnable if X86_VARIANTS[v] & UNSAFE_FEATURES}
    safe = runnable if allow_amx else [v for v in runnable if v not in unsafe]
    if not safe:
        raise BackendError(
            "no CPU backend variant of this build runs on this CPU "
            f"(built: {', '.join(names) or 'none'})"
        )
    best = max(safe, key=variant_score)
    skipped = tuple(
        sorted(v for v in unsafe if v not in safe and variant_score(v) > variant_score(best))
    )
    return CpuChoice(best, skipped_unsafe=skipped)


@dataclass(frozen=True, slots=True)
class Backends:
    """What `load_backends` set up; logged at start and exported as sentiric_llm_build_info."""

    cpu_variant: str  # "builtin" when the CPU backend is linked in (a native build)
    cpu_features: Mapping[str, str] = field(default_factory=dict)
    gpu: str = "none"  # e.g. "CUDA0 (NVIDIA H100 80GB HBM3)"
    # False when the loaded CPU backend would repack weights into the AMX buffer type.
    use_extra_bufts: bool = True
    skipped_unsafe: tuple[str, ...] = ()

    def summary(self) -> str:
        on = [name for name, value in self.cpu_features.items() if value not in ("0", "")]
        parts = [f"cpu_variant={self.cpu_variant}", f"gpu={self.gpu}"]
        if self.skipped_unsafe:
            parts.append(f"skipped_unsafe={','.join(self.skipped_unsafe)}")
        if not self.use_extra_bufts:
            parts.append("extra_buffer_types=off (AMX)")
        parts.append(f"cpu_features={' '.join(on)}")
        return " ".join(parts)


def _ggml(lib_dir: Path) -> ctypes.CDLL:
    # The soname libllama links (a wheel holds libggml.so, .so.0 and .so.0.x as separate
    # copies, not symlinks): opening another copy would give a second, empty backend registry.
    for name in ("libggml.so.0", "libggml.so"):
        if (lib_dir / name).exists():
            break
    lib = ctypes.CDLL(str(lib_dir / name))
    lib.ggml_backend_load.restype = ctypes.c_void_p
    lib.ggml_backend_load.argtypes = [ctypes.c_char_p]
    lib.ggml_backend_load_all_from_path.argtypes = [ctypes.c_char_p]
    lib.ggml_backend_reg_count.restype = ctypes.c_size_t
    lib.ggml_backend_reg_by_name.restype = ctypes.c_void_p
    lib.ggml_backend_reg_by_name.argtypes = [ctypes.c_char_p]
    lib.ggml_backend_reg_get_proc_address.restype = ctypes.c_void_p
    lib.ggml_backend_reg_get_proc_address.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.ggml_backend_dev_count.restype = ctypes.c_size_t
    lib.ggml_backend_dev_get.restype = ctypes.c_void_p
    lib.ggml_backend_dev_get.argtypes = [ctypes.c_size_t]
    lib.ggml_backend_dev_by_type.restype = ctypes.c_void_p
    lib.ggml_backend_dev_by_type.argtypes = [ctypes.c_int]
    lib.ggml_backend_dev_type.restype = ctypes.c_int
    lib.ggml_backend_dev_type.argtypes = [ctypes.c_void_p]
    lib.ggml_backend_dev_name.restype = ctypes.c_char_p
    lib.ggml_backend_dev_name.argtypes = [ctypes.c_void_p]
    lib.ggml_backend_dev_description.restype = ctypes.c_char_p
    lib.ggml_backend_dev_description.argtypes = [ctypes.c_void_p]
    lib.ggml_backend_dev_memory.argtypes = [
        ctypes.c_void_p,
        ctypes.POINTER(ctypes.c_size_t),
        ctypes.POINTER(ctypes.c_size_t),
    ]
    lib.ggml_backend_buft_name.restype = ctypes.c_char_p
    lib.ggml_backend_buft_name.argtypes = [ctypes.c_void_p]
    return lib


# ggml_backend_dev_type values (ggml-backend.h).
DEV_CPU, DEV_GPU, DEV_IGPU = 0, 1, 2


class _Feature(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("value", ctypes.c_char_p)]


def _module_score(path: Path) -> int:
    """ggml's own check that this CPU runs a variant module (0 = it does not)."""
    try:
        module = ctypes.CDLL(str(path))
        score = module.ggml_backend_score
    except (OSError, AttributeError):
        return 0
    score.restype = ctypes.c_int
    return int(score())


def _cpu_features(lib: ctypes.CDLL) -> dict[str, str]:
    reg = lib.ggml_backend_reg_by_name(b"CPU")
    if not reg:
        return {}
    address = lib.ggml_backend_reg_get_proc_address(reg, b"ggml_backend_get_features")
    if not address:
        return {}
    get = ctypes.CFUNCTYPE(ctypes.POINTER(_Feature), ctypes.c_void_p)(address)
    features = get(reg)
    out: dict[str, str] = {}
    i = 0
    while features[i].name:
        out[features[i].name.decode()] = (features[i].value or b"").decode()
        i += 1
    return out


def _extra_buffer_types(lib: ctypes.CDLL) -> list[str]:
    dev = lib.ggml_backend_dev_by_type(DEV_CPU)
    reg = lib.ggml_backend_reg_by_name(b"CPU")
    if not dev or not reg:
        return []
    address = lib.ggml_backend_reg_get_proc_address(reg, b"ggml_backend_dev_get_extra_bufts")
    if not address:
        return []
    get = ctypes.CFUNCTYPE(ctypes.POINTER(ctypes.c_void_p), ctypes.c_void_p)(address)
    bufts = get(dev)
    names: list[str] = []
    i = 0
    while bufts and bufts[i]:
        names.append((lib.ggml_backend_buft_name(bufts[i]) or b"").decode())
        i += 1
    return names


def _gpu_summary(lib: ctypes.CDLL) -> str:
    gpus = []
    for i in range(lib.ggml_backend_dev_count()):
        dev = lib.ggml_backend_dev_get(i)
        if lib.ggml_backend_dev_type(dev) in (DEV_GPU, DEV_IGPU):
            name = (lib.ggml_backend_dev_name(dev) or b"").decode()
            description = (lib.ggml_backend_dev_description(dev) or b"").decode()
            gpus.append(f"{name} ({description})" if description else name)
    return ", ".join(gpus) or "none"


def gpu_free_memory(lib_dir: Path | None = None) -> list[tuple[int, int]]:
    """(free, total) bytes of every GPU device llama.cpp sees, in device order."""
    lib = _ggml(lib_dir or llama_cpp_lib_dir())
    out: list[tuple[int, int]] = []
    for i in range(lib.ggml_backend_dev_count()):
        dev = lib.ggml_backend_dev_get(i)
        if lib.ggml_backend_dev_type(dev) in (DEV_GPU, DEV_IGPU):
            free, total = ctypes.c_size_t(0), ctypes.c_size_t(0)
            lib.ggml_backend_dev_memory(dev, ctypes.byref(free), ctypes.byref(total))
            out.append((free.value, total.value))
    return out


def llama_cpp_lib_dir() -> Path:
    """Where llama-cpp-python keeps libllama/libggml (LLAMA_CPP_LIB_PATH overrides, as there)."""
    override = os.environ.get("LLAMA_CPP_LIB_PATH")
    if override:
        return Path(override)
    import llama_cpp

    return Path(llama_cpp.__file__).parent / "lib"


def llama_cpp_python_version() -> str:
    try:
        return importlib.metadata.version("llama-cpp-python")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _read_cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


@functools.cache
def load_backends(lib_dir: Path | None = None) -> Backends:
    """Load the CPU variant and GPU backends once per process, before llama_backend_init."""
    lib_dir = lib_dir or llama_cpp_lib_dir()
    lib = _ggml(lib_dir)
    allow_amx = _env_flag("SENTIRIC_ALLOW_AMX")
    backends = _load(lib, lib_dir, allow_amx)
    if _env_flag("SENTIRIC_NO_REPACK"):
        return dataclasses.replace(backends, use_extra_bufts=False)
    return backends


def _load(lib: ctypes.CDLL, lib_dir: Path, allow_amx: bool) -> Backends:
    if lib.ggml_backend_reg_count() > 0:
        # A build with backends linked in (no GGML_BACKEND_DL): nothing to choose, but its CPU
        # backend may repack weights for AMX; loading without extra buffer types avoids that.
        amx = "AMX" in _extra_buffer_types(lib)
        return Backends(
            cpu_variant="builtin",
            cpu_features=_cpu_features(lib),
            gpu=_gpu_summary(lib),
            use_extra_bufts=allow_amx or not amx,
        )
    modules = {
        m.group("variant"): path
        for path in sorted(lib_dir.glob("libggml-cpu-*.so"))
        if (m := _CPU_MODULE.match(path.name))
    }
    for name in _GPU_MODULES:
        path = lib_dir / f"libggml-{name}.so"
        # A GPU image on a node without that GPU's driver: the module cannot load, and the
        # server runs on the CPU, which the log and the build_info metric then say.
        if path.exists() and not lib.ggml_backend_load(str(path).encode()):
            log.warning("could not load the %s backend (%s); running on the CPU", name, path)
    skipped: tuple[str, ...] = ()
    known = [v for v in modules if v in X86_VARIANTS]
    if known:
        choice = _checked_choice(modules, parse_cpu_flags(_read_cpuinfo()), allow_amx)
        if not lib.ggml_backend_load(str(modules[choice.variant]).encode()):
            raise BackendError(f"llama.cpp could not load {modules[choice.variant]}")
        variant, skipped = choice.variant, choice.skipped_unsafe
    else:
        # Not x86 (ARM variants have no AMX path): ggml's own ranking is safe there.
        lib.ggml_backend_load_all_from_path(str(lib_dir).encode())
        variant = "auto"
    if not lib.ggml_backend_dev_by_type(DEV_CPU):
        raise BackendError(f"no llama.cpp CPU backend could be loaded from {lib_dir}")
    amx = "AMX" in _extra_buffer_types(lib)
    return Backends(
        cpu_variant=variant,
        cpu_features=_cpu_features(lib),
        gpu=_gpu_summary(lib),
        use_extra_bufts=allow_amx or not amx,
        skipped_unsafe=skipped,
    )


def _checked_choice(modules: Mapping[str, Path], flags: frozenset[str], allow: bool) -> CpuChoice:
    """choose_cpu_variant, then ggml's own score as a second opinion (the OS may lack AVX-512)."""
    forced = os.environ.get("SENTIRIC_CPU_VARIANT", "").strip() or None
    candidates = {v for v in modules if v in X86_VARIANTS}
    while True:
        choice = choose_cpu_variant(flags, candidates, forced=forced, allow_amx=allow)
        if _module_score(modules[choice.variant]) > 0:
            return choice
        if forced:
            raise BackendError(f"SENTIRIC_CPU_VARIANT={forced}: this CPU cannot run that variant")
        log.warning("ggml says this CPU cannot run the %s variant; trying the next", choice.variant)
        candidates.discard(choice.variant)
