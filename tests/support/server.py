"""Run a real `sentiric-llm serve` process for tests, on free 127.0.0.1 ports.

`running_server(...)` writes an engine.yaml, starts the server as a subprocess, waits
(bounded) until GET /ready answers 200 and always kills the process by pid on exit.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class ServerHandle:
    http_url: str  # e.g. http://127.0.0.1:40123 (the openai client's base_url is http_url + "/v1")
    grpc_target: str  # e.g. 127.0.0.1:40124
    pid: int
    config_path: Path
    log_path: Path
    process: subprocess.Popen[bytes]
    # With server.tls.https: the CA that signed the server certificate (http_url is https://).
    ca_file: Path | None = None

    @property
    def verify(self) -> ssl.SSLContext | bool:
        """httpx's `verify=` for this server: trusts ca_file when it serves HTTPS."""
        if self.ca_file is None:
            return True
        return ssl.create_default_context(cafile=str(self.ca_file))

    @property
    def openai_base_url(self) -> str:
        return f"{self.http_url}/v1"

    @property
    def metrics_url(self) -> str:
        return f"{self.http_url}/metrics"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Poll /ready until 200 (bounded); fail with the server log if the process dies."""
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2.0, verify=self.verify) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"server exited with {self.process.returncode} before ready:\n"
                        + self.log_text()[-4000:]
                    )
                with contextlib.suppress(httpx.TransportError):
                    if client.get(f"{self.http_url}/ready").status_code == 200:
                        return
                time.sleep(0.1)
        raise TimeoutError(f"server not ready after {timeout}s:\n{self.log_text()[-4000:]}")


def free_port() -> int:
    """A port nothing listens on right now (the OS picks it; tiny race accepted in tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def stop_process(process: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT_S) -> int:
    """SIGTERM (graceful), then SIGKILL after `timeout`; returns the exit status."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=timeout)
    return process.returncode


@contextlib.contextmanager
def running_server(
    model_path: Path,
    *,
    parallel: int = 4,
    context_size: int = 2048,
    max_queue: int = 64,
    extra_config: Mapping[str, Any] | None = None,
    tls: Mapping[str, str | Path | bool] | None = None,
    ca_file: Path | None = None,
    wait: bool = True,
    env: Mapping[str, str] | None = None,
    args: Sequence[str] = (),
) -> Iterator[ServerHandle]:
    """Start `sentiric-llm serve` on free ports; yields once /ready is 200 (unless wait=False).

    `tls` is server.tls (certFile, keyFile, clientCAFile, https); with https, `ca_file` is
    the CA the handle trusts (`verify`) and http_url is https://. `extra_config` is merged into
    the engine.yaml (camelCase keys, e.g. {"sampling": {"maxTokens": 64}}); `args` are
    extra `serve` flags (e.g. ["--shutdown-grace", "1"]).
    """
    workdir = Path(tempfile.mkdtemp(prefix="sentiric-server-"))
    http_port, grpc_port = free_port(), free_port()
    config: dict[str, Any] = {
        "model": {"path": str(model_path)},
        "engine": {
            "contextSize": context_size,
            "parallel": parallel,
            "maxQueue": max_queue,
            "threads": 2,
            "gpuLayers": 0,
        },
        "server": {
            "host": "127.0.0.1",
            "httpPort": http_port,
            "grpcPort": grpc_port,
            "logFormat": "json",
            "logLevel": "INFO",
        },
    }
    if tls is not None:
        config["server"]["tls"] = {
            key: value if isinstance(value, bool) else str(value) for key, value in tls.items()
        }
    https = tls is not None and tls.get("https") is True
    if extra_config:
        config = _merge(config, extra_config)
    config_path = workdir / "engine.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=True))
    log_path = workdir / "server.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sentiric_inference",
                "serve",
                "--config",
                str(config_path),
                *args,
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
    handle = ServerHandle(
        http_url=f"{'https' if https else 'http'}://127.0.0.1:{http_port}",
        grpc_target=f"127.0.0.1:{grpc_port}",
        pid=process.pid,
        config_path=config_path,
        log_path=log_path,
        process=process,
        ca_file=ca_file if https else None,
    )
    try:
        if wait:
            handle.wait_ready()
        yield handle
    finally:
        stop_process(process)
