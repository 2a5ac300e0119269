#!/usr/bin/env bash
# The GPU end-to-end run (issue 16, item 3) as one script, for a machine with an NVIDIA GPU:
#   1. llama-cpp-python built with CUDA for this GPU's architecture (hack/llama-wheel.sh,
#      cached by its flags) in a separate venv (.venv-cuda, made by hack/bootstrap.sh), so
#      the CPU venv and its wheel stay as they are;
#   2. llama.cpp's own llama-server built with CUDA from the same vendored llama.cpp
#      (hack/llama-server.sh with LLAMA_SERVER_CMAKE_ARGS), the reference system;
#   3. a Qwen2.5-3B-shaped Q4_K_M GGUF with random weights and Qwen's vocabulary size
#      (bench/shaped_model.py): the compute of the real model, which cannot be downloaded here;
#   4. bench/bench_server.py at N = 1, 4, 8, 16, 32: tokens/s, TTFT p50/p95 and per-stream
#      tokens/s of ours and llama-server's, side by side, every layer on the GPU.
# The seed reference to compare with: 4-5 calls at 55-60 tok/s each, TTFT ~250 ms (RTX 3060).
# Goals: TTFT p95 < 100 ms at 8 calls, per-call >= 55 tok/s at 16 calls.
#
#   bash bench/gpu_run.sh [OUT_DIR]        # figures in OUT_DIR/gpu-run.json and .txt
#
# Not yet run: no GPU was lent to the sessions that wrote it (docs/performance.md).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-/tmp/sentiric-gpu-run}}"
mkdir -p "$out"
log() { echo "gpu_run: $*" >&2; }

command -v nvidia-smi >/dev/null || { log "no nvidia-smi: this script needs an NVIDIA GPU"; exit 2; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
# e.g. "9.0" -> "90": build for this GPU only (minutes instead of an hour for every arch).
arch="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -n1 | tr -d ' .')"
grep -m1 "model name" /proc/cpuinfo | tee -a "$out/gpu.txt"
nproc | tee -a "$out/gpu.txt"

cuda_args="-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=${arch} -DGGML_NATIVE=OFF"
cuda_args="$cuda_args -DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON"
cuda_args="$cuda_args -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAVA_BUILD=OFF"
log "llama-cpp-python with CUDA (sm_${arch})"
# hack/bootstrap.sh makes the venv the way `make venv` does, from the CUDA wheel.
CMAKE_ARGS="$cuda_args" VENV=.venv-cuda bash hack/bootstrap.sh

log "llama-server with CUDA"
server="$(LLAMA_SERVER_CMAKE_ARGS="-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=${arch}" \
  PYTHON=.venv-cuda/bin/python bash hack/llama-server.sh)"

model="$out/qwen25-3b-shaped-q4_k_m.gguf"
if [ ! -s "$model" ]; then
  log "Qwen2.5-3B-shaped Q4_K_M model"
  .venv-cuda/bin/python bench/shaped_model.py --shape 3b --type q4_k_m --out "$model" >/dev/null
fi

log "bench_server.py, N = 1 4 8 16 32"
.venv-cuda/bin/python bench/bench_server.py --model "$model" --seqs 1 4 8 16 32 \
  --tokens 128 --rounds 3 --threads 8 --llama-server "$server" \
  --json "$out/gpu-run.json" | tee "$out/gpu-run.txt"
