"""Stubs generated from proto/sentiric/llm/v1/llama.proto by hack/gen-proto.sh; do not edit."""
