#!/usr/bin/env bash
# Builds the llama-cpp-python wheel once into a cache outside the repo and prints its path.
#
# The default build is portable: GGML_BACKEND_DL + GGML_CPU_ALL_VARIANTS compile one CPU
# backend per x86 level (x64 ... icelake, zen4, sapphirerapids) and the server picks the best
# safe one on the machine where it runs (sentiric_inference/engine/backends.py), as llama.cpp's
# own release images do. A native build (-DGGML_NATIVE=ON) faults on AMX CPUs and SIGILLs on
# any older CPU it is copied to; docs/architecture.md has the measurements behind the choice.
#
# The cache key covers the version, CMAKE_ARGS and the patches, so changing any
# of them builds a new wheel instead of silently reusing the old one. Compiling takes ~30
# minutes on 2 cores (14 CPU variants); every later venv, image stage and CI run reuses it.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
LLAMA_CPP_PYTHON_VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
default_args="-DGGML_NATIVE=OFF -DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON"
default_args="$default_args -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAVA_BUILD=OFF"
cmake_args="${CMAKE_ARGS:-$default_args}"
key=$( { echo "$LLAMA_CPP_PYTHON_VERSION"; echo "$cmake_args"; cat "$here"/patches/llama-cpp-python-*.patch; } \
  | sha256sum | cut -c1-12)
cache="${SENTIRIC_CACHE:-$HOME/.cache/sentiric-llm}/wheels/llama-cpp-python-${LLAMA_CPP_PYTHON_VERSION}-$(uname -m)-$key"
python="${PYTHON:-python3}"
if [ "${1:-}" = "--cache-dir" ]; then
  echo "$cache"  # where this configuration's wheel is (or would be) cached
  exit 0
fi
wheel=$(ls "$cache"/llama_cpp_python-*.whl 2>/dev/null | head -n 1 || true)
if [ -z "$wheel" ]; then
  echo "building llama-cpp-python ${LLAMA_CPP_PYTHON_VERSION} with: $cmake_args (once; cached in $cache)" >&2
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  "$python" -m pip download --quiet --no-deps --no-binary :all: --dest "$tmp" \
    "llama-cpp-python==${LLAMA_CPP_PYTHON_VERSION}" >&2
  tar -xzf "$tmp"/llama_cpp_python-*.tar.gz -C "$tmp"
  src=$(ls -d "$tmp"/llama_cpp_python-*/)
  for p in "$here"/patches/llama-cpp-python-*.patch; do
    patch -d "$src" -p1 --forward --quiet < "$p" >&2
  done
  CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" CMAKE_ARGS="$cmake_args" \
    "$python" -m pip wheel --no-deps --wheel-dir "$tmp/dist" "$src" >&2
  mkdir -p "$cache"
  mv "$tmp"/dist/llama_cpp_python-*.whl "$cache"/
  wheel=$(ls "$cache"/llama_cpp_python-*.whl | head -n 1)
fi
echo "$wheel"
