#!/usr/bin/env bash
# Regenerates the committed gRPC stubs from proto/ with grpcio-tools and mypy-protobuf.
# Usage: hack/gen-proto.sh [OUT_DIR]   (default: the package's grpc_api/gen; tests pass a temp dir)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-inference/sentiric_inference/grpc_api/gen}"
python="${PYTHON:-.venv/bin/python}"
bin="$(dirname "$python")"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

"$python" -m grpc_tools.protoc -I proto \
  --plugin=protoc-gen-mypy="$bin/protoc-gen-mypy" \
  --plugin=protoc-gen-mypy_grpc="$bin/protoc-gen-mypy_grpc" \
  --python_out="$tmp" --mypy_out="$tmp" \
  --grpc_python_out="$tmp" --mypy_grpc_out="$tmp" \
  sentiric/llm/v1/llama.proto

# protoc writes sentiric/llm/v1/*; the stubs live flat inside the package, so the one
# cross-module import is rewritten to the package path (the proto package, and so the
# wire names, stay sentiric.llm.v1).
mkdir -p "$out"
for file in llama_pb2.py llama_pb2.pyi llama_pb2_grpc.py llama_pb2_grpc.pyi; do
  sed -e 's/^from sentiric\.llm\.v1 import llama_pb2/from sentiric_inference.grpc_api.gen import llama_pb2/' \
      -e 's/^import sentiric\.llm\.v1\.llama_pb2$/import sentiric_inference.grpc_api.gen.llama_pb2/' \
      -e 's/sentiric\.llm\.v1\.llama_pb2\./sentiric_inference.grpc_api.gen.llama_pb2./g' \
      "$tmp/sentiric/llm/v1/$file" > "$out/$file"
done
