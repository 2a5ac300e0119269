"""The operator's layers call only downwards; checked on the source's import statements.

specs -> sizing -> builders -> observations/statuses -> kubeapi -> reconciling ->
refreshing/resyncing -> handlers -> __main__: the pure layers import neither kopf nor a
Kubernetes client, only kubeapi talks to the API, and only handlers (and __main__) use kopf.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[3] / "operator" / "sentiric_operator"
PURE = [
    "specs",
    "sizing",
    "errors",
    "settings",
    "metrics",
    "observations",
    "crashes",
    "statuses",
    "builders",
]


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _modules(name: str) -> list[Path]:
    target = PACKAGE / name
    return sorted(target.rglob("*.py")) if target.is_dir() else [target.with_suffix(".py")]


@pytest.mark.parametrize("layer", PURE)
def test_pure_layers_import_no_kopf_and_no_client(layer: str) -> None:
    for path in _modules(layer):
        imported = _imports(path)
        forbidden = {
            name
            for name in imported
            if name.split(".")[0] in {"kopf", "kubernetes"}
            or name in {"sentiric_operator.kubeapi", "sentiric_operator.handlers"}
        }
        assert not forbidden, f"{path.name} imports {sorted(forbidden)}"


def test_only_kubeapi_imports_the_kubernetes_client() -> None:
    users = {
        path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*.py")
        if any(name.split(".")[0] == "kubernetes" for name in _imports(path))
    }
    assert users == {"kubeapi.py"}


def test_only_handlers_and_main_import_kopf() -> None:
    users = {
        path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*.py")
        if any(name.split(".")[0] == "kopf" for name in _imports(path))
    }
    assert users == {"handlers.py", "__main__.py"}
