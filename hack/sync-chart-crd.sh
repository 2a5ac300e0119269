#!/usr/bin/env bash
# Copies the LLMProfile CRD from its single source (crds/) into the Helm chart's crds/ folder.
# Run after every CRD change; tests/unit/chart/test_chart_crd.py fails while the two differ.
set -euo pipefail
cd "$(dirname "$0")/.."
src=crds/llmprofiles.llm.sentiric.ai.yaml
dst=charts/sentiric-llm/crds/llmprofiles.llm.sentiric.ai.yaml
mkdir -p "$(dirname "$dst")"
cp "$src" "$dst"
echo "synced $src -> $dst" >&2
