"""The import contracts in .importlinter hold, and each kind of violation breaks its contract.

`make lint` runs `lint-imports` too; this test is what CI enforces (CI runs `make test`). The
violations are written into a copy of both packages in a temporary directory, put first on
PYTHONPATH, so the working tree is never touched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = ROOT / ".importlinter"
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
PACKAGES = (ROOT / "inference" / "sentiric_inference", ROOT / "operator" / "sentiric_operator")


def _lint(pythonpath: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    # Wide lines: contract names are matched in the report, which rich wraps at 80 columns.
    env["COLUMNS"] = "400"
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(pythonpath), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", str(CONTRACTS)],
        cwd=pythonpath or ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_both_packages_keep_every_contract() -> None:
    proc = _lint()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        # The inference layers, downwards only; siblings apart.
        ("sentiric_inference/engine/types.py", "import sentiric_inference.serving", "commands ->"),
        (
            "sentiric_inference/serving/types.py",
            "import sentiric_inference.protocol",
            "commands ->",
        ),
        ("sentiric_inference/http/errors.py", "import sentiric_inference.grpc_api", "commands ->"),
        ("sentiric_inference/config.py", "import sentiric_inference.engine", "shared modules"),
        (
            "sentiric_inference/protocol/convert.py",
            "import sentiric_inference.engine.scheduler",
            "only through serving",
        ),
        # The operator's layers (what tests/unit/operator/test_operator_layers.py checked).
        ("sentiric_operator/specs.py", "import kopf", "pure layers"),
        ("sentiric_operator/builders/pvc.py", "import kubernetes", "pure layers"),
        ("sentiric_operator/statuses.py", "import sentiric_operator.kubeapi", "Operator: __main__"),
        ("sentiric_operator/reconciling.py", "import sentiric_operator.handlers", "__main__ ->"),
        ("sentiric_operator/reconciling.py", "import kubernetes", "only kubeapi"),
        ("sentiric_operator/refreshing.py", "import kopf", "only handlers and __main__"),
        # What the operator may take from the inference package.
        ("sentiric_operator/specs.py", "import sentiric_inference.serving", "only config"),
        ("sentiric_inference/engine/sizing.py", "import llama_cpp", "inference runtime"),
    ],
)
def test_a_violation_breaks_its_contract(
    tmp_path: Path, module: str, line: str, contract: str
) -> None:
    for package in PACKAGES:
        shutil.copytree(
            package, tmp_path / package.name, ignore=shutil.ignore_patterns("__pycache__")
        )
    target = tmp_path / module
    target.write_text(f"{target.read_text()}\n{line}  # the violation under test\n")
    proc = _lint(tmp_path)
    assert proc.returncode != 0, proc.stdout
    # The summary: one row per contract, "<name> KEPT" or "<name> BROKEN", maybe with
    # "(N ignored imports)" after it.
    broken = [row for row in proc.stdout.splitlines() if " BROKEN" in row]
    assert any(contract in row for row in broken), proc.stdout
