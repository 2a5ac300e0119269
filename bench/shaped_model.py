"""A GGUF with a real Qwen 2.5 model's shape and random weights, quantized like the real one.

Benchmarks need the compute of a real model per token (layer shapes, vocabulary size, weight
type), not its answers, and the real weights cannot be downloaded on every bench machine.
This writes tests/support/tiny_model.py's qwen2 model at the named shape with Qwen 2.5's
vocabulary size (151,936, padded) in F16, then quantizes it with llama.cpp's own
llama_model_quantize (the same code `llama-quantize` runs), e.g. to Q4_K_M, as the Qwen GGUFs
on Hugging Face are. Prints the path.

    .venv/bin/python bench/shaped_model.py --shape 3b --type q4_k_m --out /tmp/qwen25-3b-q4km.gguf
"""

from __future__ import annotations

import argparse
import ctypes
import sys
import tempfile
import time
from pathlib import Path

import llama_cpp as llc
from sentiric_inference.engine.native import init_backend

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.support.tiny_model
from tests.support.tiny_model import TinyDims, write_tiny_qwen2_gguf

QWEN25_VOCAB = 151_936
# Qwen 2.5's published hyper-parameters (config.json of each size).
SHAPES = {
    "0.5b": TinyDims(n_embd=896, n_layer=24, n_head=14, n_head_kv=2, n_ff=4864),
    "1.5b": TinyDims(n_embd=1536, n_layer=28, n_head=12, n_head_kv=2, n_ff=8960),
    "3b": TinyDims(n_embd=2048, n_layer=36, n_head=16, n_head_kv=2, n_ff=11008),
    "7b": TinyDims(n_embd=3584, n_layer=28, n_head=28, n_head_kv=4, n_ff=18944),
    # Small enough to check this script itself on any machine.
    "smoke": TinyDims(n_embd=256, n_layer=2, n_head=4, n_head_kv=2, n_ff=512),
}
TYPES = {
    "f16": None,
    "q8_0": llc.LLAMA_FTYPE_MOSTLY_Q8_0,
    "q4_0": llc.LLAMA_FTYPE_MOSTLY_Q4_0,
    "q4_k_m": llc.LLAMA_FTYPE_MOSTLY_Q4_K_M,
    "q5_k_m": llc.LLAMA_FTYPE_MOSTLY_Q5_K_M,
}


def quantize(source: Path, target: Path, ftype: int, threads: int) -> None:
    init_backend()
    params = llc.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = threads
    rc = llc.llama_model_quantize(str(source).encode(), str(target).encode(), ctypes.byref(params))
    if rc != 0:
        raise SystemExit(f"llama_model_quantize failed ({rc})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="3b")
    parser.add_argument("--type", choices=sorted(TYPES), default="q4_k_m")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=0, help="0 = llama.cpp's default")
    args = parser.parse_args()
    base = SHAPES[args.shape]
    dims = TinyDims(**{**base.__dict__, "n_ctx_train": 32768, "n_vocab": QWEN25_VOCAB})
    started = time.monotonic()
    ftype = TYPES[args.type]
    if ftype is None:
        write_tiny_qwen2_gguf(args.out, dims=dims)
    else:
        with tempfile.TemporaryDirectory(dir=args.out.parent) as tmp:
            f16 = write_tiny_qwen2_gguf(Path(tmp) / "f16.gguf", dims=dims)
            quantize(f16, args.out, ftype, args.threads)
    size = args.out.stat().st_size / 2**30
    print(
        f"{args.out} ({args.shape}, {args.type}, {size:.2f} GiB, "
        f"{time.monotonic() - started:.0f} s)",
        file=sys.stderr,
    )
    print(args.out)


if __name__ == "__main__":
    main()
