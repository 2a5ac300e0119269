#!/usr/bin/env bash
# Builds the llama-cpp-python wheel once into a cache outside the repo and prints its path.
# llama-cpp-python only ships an sdist for CPU Linux; compiling it takes ~8 minutes on
# 2 cores, so every later venv (and CI on the same machine) reuses the cached wheel.
set -euo pipefail
LLAMA_CPP_PYTHON_VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
cache="${SENTIRIC_CACHE:-$HOME/.cache/sentiric-llm}/wheels/llama-cpp-python-${LLAMA_CPP_PYTHON_VERSION}-$(uname -m)"
python="${PYTHON:-python3}"
mkdir -p "$cache"
wheel=$(ls "$cache"/llama_cpp_python-*.whl 2>/dev/null | head -n 1 || true)
if [ -z "$wheel" ]; then
  echo "building llama-cpp-python ${LLAMA_CPP_PYTHON_VERSION} (once; cached in $cache)" >&2
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" \
  CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=ON -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TESTS=OFF}" \
    "$python" -m pip wheel --no-deps --wheel-dir "$tmp" "llama-cpp-python==${LLAMA_CPP_PYTHON_VERSION}" >&2
  mv "$tmp"/llama_cpp_python-*.whl "$cache"/
  wheel=$(ls "$cache"/llama_cpp_python-*.whl | head -n 1)
fi
echo "$wheel"
