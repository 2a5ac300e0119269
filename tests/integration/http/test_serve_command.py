"""`sentiric-llm serve` start-up: bad configuration is a clear message and exit code 2."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest


def serve(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sentiric_inference", "serve", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.parametrize(
    ("yaml_text", "named"),
    [
        ("engine:\n  contextSize: 10\n", "engine.contextSize"),
        ("engine:\n  batchSize: 8\n", "engine.batchSize"),
        ("engine:\n  parralel: 4\n", "engine.parralel"),
        ("sampling:\n  temperature: hot\n", "sampling.temperature"),
        ("prompt:\n  ragTemplate: 'no placeholders'\n", "prompt.ragTemplate"),
        ("server: [1, 2\n", "not valid YAML"),
    ],
)
def test_bad_config_names_the_key_and_exits_2(tmp_path: Path, yaml_text: str, named: str) -> None:
    config = tmp_path / "engine.yaml"
    config.write_text(yaml_text)
    result = serve("--config", str(config))
    assert result.returncode == 2, result.stderr
    assert named in result.stderr
    assert result.stderr.startswith("sentiric-llm serve: ")
    assert "Traceback" not in result.stderr


def test_missing_files_exit_2(tmp_path: Path) -> None:
    result = serve("--config", str(tmp_path / "absent.yaml"))
    assert result.returncode == 2 and "does not exist" in result.stderr
    result = serve("--model", str(tmp_path / "absent.gguf"))
    assert result.returncode == 2 and "absent.gguf" in result.stderr


def test_bad_flag_value_names_the_key(tmp_path: Path) -> None:
    result = serve("--parallel", "-1", "--model", str(tmp_path / "x.gguf"))
    assert result.returncode == 2 and "engine.parallel" in result.stderr


@pytest.mark.model
def test_no_config_serves_the_embedded_model_and_says_where(tmp_path: Path) -> None:
    import httpx

    from tests.support.server import free_port, stop_process

    http_port, grpc_port = free_port(), free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sentiric_inference",
                "serve",
                "--host",
                "127.0.0.1",
                "--http-port",
                str(http_port),
                "--grpc-port",
                str(grpc_port),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        server = httpx.Client(base_url=f"http://127.0.0.1:{http_port}", timeout=5)
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            try:
                if server.get("/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        models = server.get("/v1/models").json()
        assert models["data"][0]["id"] == "SmolLM2-135M-Instruct"
        text = log.read_text()
        assert f"http://127.0.0.1:{http_port}/v1" in text
        assert f"127.0.0.1:{grpc_port}" in text
        assert f"http://127.0.0.1:{http_port}/metrics" in text
    finally:
        code = stop_process(process)
    assert code == 0, log.read_text()
