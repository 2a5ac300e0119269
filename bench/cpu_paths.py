"""CPU paths on this machine: prompt and decode tokens/s of each llama.cpp CPU variant that runs.

The wheel carries one CPU backend per x86 level (hack/llama-wheel.sh); the server loads the
best safe one (engine/backends.py). This bench times, side by side in one run, each path this
CPU can take, every one in a child process so that a path that faults is reported, not fatal:
  <variant>            that variant with llama.cpp's repacked weight layouts (extra buffer types);
  <variant> no-repack  the same kernels on the plain layout (use_extra_bufts = false);
  sapphirerapids+AMX   the AMX buffer type that llama.cpp picks by itself on AMX Xeons.
For each path: prefill tokens/s (--prompts prompts of --prompt-tokens tokens, 64-token batches
as a CPU pod runs them) and decode tokens/s (--seqs sequences in lockstep), medians of --reps
rounds in rotating order, and the median per-round ratio to the path the server picks.

    .venv/bin/python bench/cpu_paths.py [--model PATH] [--types source q4_0] [--reps 3]
        [--variants zen4 haswell ...]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
CHILD_TIMEOUT_S = 600
CONTEXT_SIZE = 1024
PREFILL_BATCH = 64  # engine.batchSize 0 on a CPU (engine/planning.py)


@dataclass(frozen=True)
class CpuPath:
    variant: str
    repack: bool
    amx: bool = False

    @property
    def label(self) -> str:
        if self.amx:
            return f"{self.variant}+AMX"
        return self.variant if self.repack else f"{self.variant} no-repack"

    def env(self) -> dict[str, str]:
        env = {"SENTIRIC_CPU_VARIANT": self.variant}
        if not self.repack:
            env["SENTIRIC_NO_REPACK"] = "1"
        if self.amx:
            env["SENTIRIC_ALLOW_AMX"] = "1"
        return env


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def default_paths(variants: list[str] | None) -> tuple[list[CpuPath], str]:
    """The server's choice first, then the other variants asked for (or a useful default set)."""
    from sentiric_inference.engine.backends import (
        UNSAFE_FEATURES,
        X86_VARIANTS,
        choose_cpu_variant,
        llama_cpp_lib_dir,
        parse_cpu_flags,
        variant_supported,
    )

    built = [p.name[len("libggml-cpu-") : -3] for p in llama_cpp_lib_dir().glob("libggml-cpu-*.so")]
    flags = parse_cpu_flags(Path("/proc/cpuinfo").read_text())
    chosen = choose_cpu_variant(flags, built).variant
    wanted = variants or ["haswell", "skylakex", "sapphirerapids"]
    paths = [CpuPath(chosen, repack=True), CpuPath(chosen, repack=False)]
    for name in wanted:
        if name == chosen or name not in built or not variant_supported(name, flags):
            continue
        if X86_VARIANTS[name] & UNSAFE_FEATURES:
            paths.append(CpuPath(name, repack=False))
            paths.append(CpuPath(name, repack=True, amx=True))
        else:
            paths.append(CpuPath(name, repack=True))
    return paths, chosen


def run_child(path: CpuPath, model: Path, args: argparse.Namespace) -> dict[str, float] | str:
    """Figures of one path, or why it produced none ("SIGSEGV", "timeout", an error line)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(model)]
    cmd += ["--prompts", str(args.prompts), "--prompt-tokens", str(args.prompt_tokens)]
    cmd += ["--seqs", str(args.seqs), "--threads", str(args.threads)]
    try:
        proc = subprocess.run(
            cmd,
            env={**os.environ, **path.env()},
            capture_output=True,
            text=True,
            timeout=CHILD_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return "timeout"
    if proc.returncode < 0:
        return f"crashed: {signal.Signals(-proc.returncode).name}"
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return f"failed: {last[:120]}"
    figures: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return figures


def child(model: Path, args: argparse.Namespace) -> None:
    sys.path.insert(0, str(BENCH))
    from _prefill import measure_prefill
    from ceiling import measure_ceiling
    from sentiric_inference.engine.native import init_backend, resolve_threads

    backends = init_backend()
    threads = resolve_threads(args.threads)
    prefill = measure_prefill(
        model,
        args.prompts,
        args.prompt_tokens,
        threads,
        context_size=CONTEXT_SIZE,
        batch_size=PREFILL_BATCH,
    )
    decode = measure_ceiling(model, args.seqs, 64, threads)
    print(json.dumps({"prefill": prefill, "decode": decode, "variant": backends.cpu_variant}))


def quantized_copy(source: Path, file_type: str, workdir: Path) -> Path:
    from weight_types import quantize

    target = workdir / f"{file_type}.gguf"
    quantize(source, target, file_type, os.cpu_count() or 1)
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="default: embedded SmolLM2")
    parser.add_argument(
        "--types",
        nargs="+",
        default=["source", "q4_0"],
        help="weight types to time: source (the file as is) and/or copies quantised to these",
    )
    parser.add_argument("--variants", nargs="+", default=None)
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--prompt-tokens", type=int, default=128)
    parser.add_argument("--seqs", type=int, default=4)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if min(args.prompts, args.prompt_tokens, args.seqs, args.reps) < 1:
        parser.error("counts must be positive")
    logging.basicConfig(level=logging.ERROR)
    if args.child is None:
        # Routes llama.cpp's quantisation chatter to logging (ERROR and up only).
        from sentiric_inference.engine.native import init_backend

        init_backend()
    if args.child is not None:
        child(args.child, args)
        return 0
    sys.path.insert(0, str(BENCH))
    from sentiric_inference.models.embedded import embedded_model_path

    source = args.model or embedded_model_path()
    paths, chosen = default_paths(args.variants)
    print(
        f"{cpu_name()}, {os.cpu_count()} CPUs; model {source.name}; prefill {args.prompts} x "
        f"{args.prompt_tokens} tokens in {PREFILL_BATCH}-token batches; decode {args.seqs} "
        f"sequences x 64 steps; {args.reps} rounds, rotating order; server's choice: {chosen}"
    )
    with tempfile.TemporaryDirectory(prefix="sentiric-cpu-paths-") as scratch:
        models = {
            t: source if t == "source" else quantized_copy(source, t, Path(scratch))
            for t in args.types
        }
        for weight_type, model in models.items():
            runs: dict[str, list[dict[str, float] | str]] = {p.label: [] for p in paths}
            for rep in range(args.reps):
                order = paths[rep % len(paths) :] + paths[: rep % len(paths)]
                for path in order:
                    runs[path.label].append(run_child(path, model, args))
            report(weight_type, model, runs, paths[0].label)
    return 0


def report(
    weight_type: str, model: Path, runs: dict[str, list[dict[str, float] | str]], base: str
) -> None:
    print(f"\n{weight_type} ({model.stat().st_size / 2**20:.0f} MiB)")
    print(f"{'path':28} {'prefill tok/s':>22} {'decode tok/s':>22}")
    base_runs = runs[base]
    for label, reps in runs.items():
        failures = [r for r in reps if isinstance(r, str)]
        if failures:
            print(f"{label:28} {failures[0]} ({len(failures)}/{len(reps)} rounds)")
            continue
        cells = []
        for column in ("prefill", "decode"):
            rate = statistics.median(r[column] for r in reps if isinstance(r, dict))
            ratios = [
                r[column] / b[column]
                for r, b in zip(reps, base_runs, strict=True)
                if isinstance(r, dict) and isinstance(b, dict)
            ]
            ratio = f"({statistics.median(ratios):5.2f}x)" if ratios else ""
            cells.append(f"{rate:10.1f} {ratio:>10}")
        print(f"{label:28} {cells[0]:>22} {cells[1]:>22}")


if __name__ == "__main__":
    sys.exit(main())
