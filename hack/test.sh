#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it (make test).
set -euo pipefail
cd "$(dirname "$0")/.."
bash hack/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH"
ruff check .
mypy
python -m pytest -q -ra "$@"
