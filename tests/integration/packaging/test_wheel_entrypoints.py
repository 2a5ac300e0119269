"""The images' entrypoints run from an installed wheel, as they do inside the containers.

The Dockerfiles `pip install .[operator]` / `.[inference]` into a venv; here the same wheel is
built and installed into a fresh venv (with the cached llama-cpp-python wheel from
hack/llama-wheel.sh, the one dependency PyPI only has as a 10-minute sdist), then the console
commands run from that venv, away from the source tree, so a missing package, package-data
file or dependency fails here instead of in a cluster.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
INSTALL_TIMEOUT_S = 900
LLAMA_PIN = next(
    dep.split("==", 1)[1]
    for dep in tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]["inference"]
    if dep.startswith("llama-cpp-python==")
)


def _run(argv: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    proc = subprocess.run(
        argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env, check=False
    )
    assert proc.returncode == 0, (
        f"{' '.join(argv)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    )
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """bin/ of a fresh venv holding the project wheel with both extras."""
    root = tmp_path_factory.mktemp("wheel")
    llama_wheel = (
        _run(
            ["bash", str(REPO_ROOT / "hack" / "llama-wheel.sh")],
            REPO_ROOT,
            timeout=INSTALL_TIMEOUT_S,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    dist = root / "dist"
    # No build isolation: setuptools and wheel come from the test venv, so no index is needed
    # to build; the same wheel the image build makes.
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(dist),
            str(REPO_ROOT),
        ],
        root,
        timeout=300,
    )
    (project_wheel,) = dist.glob("sentiric_llm-*.whl")
    env_dir = root / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    bin_dir = env_dir / "bin"
    _run(
        [
            str(bin_dir / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            llama_wheel,
            f"{project_wheel}[inference,operator]",
        ],
        root,
        timeout=INSTALL_TIMEOUT_S,
    )
    yield bin_dir


@pytest.mark.timeout(INSTALL_TIMEOUT_S + 120)
def test_sentiric_llm_runs_from_the_installed_wheel(installed: Path, tmp_path: Path) -> None:
    out = _run([str(installed / "sentiric-llm"), "--help"], tmp_path).stdout
    for command in ("serve", "download", "generate", "benchmark"):
        assert command in out
    # The subcommands the operator's pods run parse their own options too.
    assert "--config" in _run([str(installed / "sentiric-llm"), "serve", "--help"], tmp_path).stdout
    _run([str(installed / "sentiric-llm"), "download", "--help"], tmp_path)


@pytest.mark.timeout(INSTALL_TIMEOUT_S + 120)
def test_sentiric_operator_runs_from_the_installed_wheel(installed: Path, tmp_path: Path) -> None:
    out = _run([str(installed / "sentiric-operator"), "--help"], tmp_path).stdout
    assert "usage: sentiric-operator" in out


@pytest.mark.timeout(INSTALL_TIMEOUT_S + 120)
def test_installed_packages_come_from_the_wheel_not_the_source_tree(
    installed: Path, tmp_path: Path
) -> None:
    code = (
        "import sentiric_inference, sentiric_operator, llama_cpp; "
        # The committed gRPC stubs and the typing marker are package data the images need.
        "import sentiric_inference.grpc_api.gen.llama_pb2_grpc; "
        "import importlib.resources as r; "
        "assert r.files('sentiric_inference').joinpath('py.typed').is_file(); "
        "assert r.files('sentiric_operator').joinpath('py.typed').is_file(); "
        # Sentiric Studio's page is served from these files (no CDN, no network).
        "studio = r.files('sentiric_inference.http').joinpath('static', 'studio'); "
        "assert all(studio.joinpath(n).is_file() "
        "for n in ('index.html', 'studio.js', 'studio.css')); "
        "print(sentiric_inference.__file__); print(sentiric_operator.__file__); "
        "print(llama_cpp.__version__)"
    )
    lines = _run([str(installed / "python"), "-c", code], tmp_path).stdout.splitlines()
    site = str(installed.parent)
    assert lines[0].startswith(site) and lines[1].startswith(site), lines
    assert lines[2] == LLAMA_PIN
