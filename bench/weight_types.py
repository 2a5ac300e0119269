"""GGUF weight types on this CPU: prefill and decode speed of one model stored each way.

Which quantisation a profile names decides more of a CPU pod's speed than anything the server
does: llama.cpp's CPU backend has fast batched kernels (llamafile's sgemm, and weights
repacked into interleaved rows at load) for some types and not for others. This bench writes
one model in several types (llama_model_quantize; quantising a file that is already
quantised loses quality, so the files are for timing, not for serving) and times, per type
and in a rotating order so drift on a shared host hits them alike:
  prefill   bench/_prefill.py: N distinct prompts through bare llama_decode in 512-token batches;
  decode    bench/ceiling.py's bare lockstep loop, N sequences, one token each per step.
Printed: medians of --reps runs and, per type, the median of per-rep ratios to the first type.

The source is a GGUF (--model, default the embedded SmolLM2 Q4_1) or a generated model with
the layer shapes of a Qwen 2.5 size (--qwen-shape, random F16 weights and --layers layers, a
tiny vocabulary: the transformer blocks dominate the time, as in the real model).

    .venv/bin/python bench/weight_types.py [--model PATH | --qwen-shape 0.5b|1.5b|3b]
        [--types q4_0 q4_k_m q8_0] [--seqs 1 8] [--prompt-tokens 42] [--reps 3]
"""

from __future__ import annotations

import argparse
import ctypes
import logging
import statistics
import sys
import tempfile
from pathlib import Path

import llama_cpp as llc
from _prefill import measure_prefill
from ceiling import measure_ceiling
from sentiric_inference.engine.native import init_backend, resolve_threads
from sentiric_inference.models.embedded import embedded_model_path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.support.tiny_model
from tests.support.tiny_model import TinyDims, write_tiny_qwen2_gguf

CONTEXT_SIZE = 2048  # cells per sequence, as bench_server's
BATCH_SIZE = 512

FILE_TYPES = {
    "f16": llc.LLAMA_FTYPE_MOSTLY_F16,
    "q8_0": llc.LLAMA_FTYPE_MOSTLY_Q8_0,
    "q6_k": llc.LLAMA_FTYPE_MOSTLY_Q6_K,
    "q5_k_m": llc.LLAMA_FTYPE_MOSTLY_Q5_K_M,
    "q5_0": llc.LLAMA_FTYPE_MOSTLY_Q5_0,
    "q4_k_m": llc.LLAMA_FTYPE_MOSTLY_Q4_K_M,
    "q4_1": llc.LLAMA_FTYPE_MOSTLY_Q4_1,
    "q4_0": llc.LLAMA_FTYPE_MOSTLY_Q4_0,
    "iq4_nl": llc.LLAMA_FTYPE_MOSTLY_IQ4_NL,
}

# Layer shapes of Qwen2.5-{0.5B,1.5B,3B}-Instruct (their config.json).
QWEN_SHAPES = {
    "0.5b": TinyDims(n_embd=896, n_head=14, n_head_kv=2, n_ff=4864, n_ctx_train=32768),
    "1.5b": TinyDims(n_embd=1536, n_head=12, n_head_kv=2, n_ff=8960, n_ctx_train=32768),
    "3b": TinyDims(n_embd=2048, n_head=16, n_head_kv=2, n_ff=11008, n_ctx_train=32768),
}


def quantize(source: Path, target: Path, file_type: str, threads: int) -> None:
    params = llc.llama_model_quantize_default_params()
    params.ftype = FILE_TYPES[file_type]
    params.allow_requantize = True
    params.nthread = threads
    rc = llc.llama_model_quantize(str(source).encode(), str(target).encode(), ctypes.byref(params))
    if rc != 0:
        raise RuntimeError(f"llama_model_quantize({file_type}) returned {rc}")


def measure(path: Path, seqs: list[int], prompt_tokens: int, threads: int) -> dict[str, float]:
    """Prefill tokens/s of max(seqs) prompts, and decode tokens/s for each N."""
    figures = {
        "prefill": measure_prefill(
            path,
            max(seqs),
            prompt_tokens,
            threads,
            context_size=CONTEXT_SIZE,
            batch_size=BATCH_SIZE,
        )
    }
    for n in seqs:
        figures[f"decode N={n}"] = measure_ceiling(path, n, 64, threads)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source_group = parser.add_mutually_exclusive_group()
    source_group.add_argument("--model", type=Path, default=None, help="default: embedded SmolLM2")
    source_group.add_argument("--qwen-shape", choices=sorted(QWEN_SHAPES), default=None)
    parser.add_argument("--layers", type=int, default=4, help="with --qwen-shape")
    parser.add_argument(
        "--types", nargs="+", choices=list(FILE_TYPES), default=["q4_0", "q4_k_m", "q8_0"]
    )
    parser.add_argument("--seqs", type=int, nargs="+", default=[1, 8])
    parser.add_argument(
        "--prompt-tokens", type=int, default=42, help="per prompt; bench_server's are ~42 uncached"
    )
    parser.add_argument("--threads", type=int, default=0, help="0 = one per core")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    if min(*args.seqs, args.reps, args.layers, args.prompt_tokens) < 1:
        parser.error("counts must be positive")
    # llama.cpp's per-tensor quantisation lines would bury the figures.
    logging.basicConfig(level=logging.ERROR)
    init_backend()
    threads = resolve_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="sentiric-weight-types-") as scratch:
        workdir = Path(scratch)
        if args.qwen_shape:
            dims = QWEN_SHAPES[args.qwen_shape]
            dims = TinyDims(**{**dims.__dict__, "n_layer": args.layers})
            source = write_tiny_qwen2_gguf(workdir / "source-f16.gguf", dims=dims)
            label = f"Qwen2.5-{args.qwen_shape} layer shapes, {args.layers} layers, F16"
            first = "f16"
        else:
            source = args.model or embedded_model_path()
            label = source.name
            first = "source"
        files = {first: source}
        for file_type in args.types:
            if file_type != first:
                files[file_type] = workdir / f"{file_type}.gguf"
                quantize(source, files[file_type], file_type, threads)
        print(
            f"{label}; {threads} threads; prefill {max(args.seqs)} x {args.prompt_tokens}-token "
            f"prompts; decode 64 steps; {args.reps} reps"
        )
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in files}
        names = list(files)
        for rep in range(args.reps):
            for name in names[rep % len(names) :] + names[: rep % len(names)]:
                runs[name].append(measure(files[name], args.seqs, args.prompt_tokens, threads))
        report(runs, files, first)


def report(runs: dict[str, list[dict[str, float]]], files: dict[str, Path], first: str) -> None:
    columns = list(runs[first][0])
    print(f"{'type':8} {'MiB':>6} " + " ".join(f"{c:>22}" for c in columns))
    for name, reps in runs.items():
        cells = []
        for column in columns:
            rate = statistics.median(r[column] for r in reps)
            ratio = statistics.median(
                r[column] / base[column] for r, base in zip(reps, runs[first], strict=True)
            )
            cells.append(f"{rate:8.1f} tok/s ({ratio:5.2f}x)")
        size = files[name].stat().st_size / 2**20
        print(f"{name:8} {size:6.0f} " + " ".join(f"{c:>22}" for c in cells))


if __name__ == "__main__":
    main()
