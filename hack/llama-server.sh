#!/usr/bin/env bash
# Builds llama.cpp's own C++ server (`llama-server`) once, from the llama.cpp that the pinned
# llama-cpp-python sdist vendors, into a cache outside the repo, and prints its path.
# Only bench/bench_server.py uses it (as a reference system); tests and CI never need it.
# `--path` prints where the binary for this machine is cached and builds nothing.
set -euo pipefail
LLAMA_CPP_PYTHON_VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
# A native build for the machine it runs on (bench only, never shipped) but without the AMX
# kernels: llama.cpp's AMX matmul faults on the first request (docs/architecture.md), which
# -march=native would switch on for Sapphire Rapids and later Xeons. GCC honours an explicit
# -mno-* over -march=native wherever it appears on the command line.
cmake_flags=(-DGGML_NATIVE=ON)
if [ "$(uname -m)" = "x86_64" ]; then
  no_amx="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
  cmake_flags+=("-DCMAKE_C_FLAGS=$no_amx" "-DCMAKE_CXX_FLAGS=$no_amx")
fi
# Extra CMake flags, e.g. LLAMA_SERVER_CMAKE_ARGS="-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=90"
# for the GPU run (bench/gpu_run.sh); part of the cache key like the rest.
read -r -a extra_flags <<< "${LLAMA_SERVER_CMAKE_ARGS:-}"
cmake_flags+=("${extra_flags[@]}")
# Keyed by the flags and by this CPU's feature flags: a native binary is only for this CPU.
cpu_flags=$(grep -m1 -E '^(flags|Features)' /proc/cpuinfo 2>/dev/null || true)
key=$(printf '%s\n%s\n%s\n' "$LLAMA_CPP_PYTHON_VERSION" "${cmake_flags[*]}" "$cpu_flags" | sha256sum | cut -c1-12)
cache="${SENTIRIC_CACHE:-$HOME/.cache/sentiric-llm}/llama-server-${LLAMA_CPP_PYTHON_VERSION}-$(uname -m)-$key"
python="${PYTHON:-python3}"
binary="$cache/llama-server"
if [ "${1:-}" = "--path" ]; then
  echo "$binary"
  exit 0
fi
if [ ! -x "$binary" ]; then
  echo "building llama-server from llama-cpp-python ${LLAMA_CPP_PYTHON_VERSION}'s llama.cpp (once; cached in $cache)" >&2
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  "$python" -m pip download --no-deps --no-binary :all: --dest "$tmp" \
    "llama-cpp-python==${LLAMA_CPP_PYTHON_VERSION}" >&2
  tar -xzf "$tmp"/llama_cpp_python-*.tar.gz -C "$tmp"
  src=$(ls -d "$tmp"/llama_cpp_python-*/vendor/llama.cpp)
  # Static libraries, so the one binary can be moved into the cache on its own.
  cmake -S "$src" -B "$tmp/build" -G Ninja -DCMAKE_BUILD_TYPE=Release "${cmake_flags[@]}" \
    -DBUILD_SHARED_LIBS=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
    -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_TESTS=OFF >&2
  cmake --build "$tmp/build" --target llama-server -j "${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" >&2
  mkdir -p "$cache"
  cp "$tmp/build/bin/llama-server" "$binary.partial"
  mv "$binary.partial" "$binary"
fi
echo "$binary"
