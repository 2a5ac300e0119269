"""HTTPS on the HTTP port (server.tls.https) against a real server process on 127.0.0.1.

The official openai client, /health, /metrics and the Studio page over TLS; plaintext and
untrusting clients refused; certificate files rotated under the running server are taken by
new connections while a stream that started before keeps going; unusable files stop the
start with a message naming the setting. Certificates are generated with `cryptography`.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from sentiric_inference.client import GenerationOptions, LlamaClient, TLSOptions

from tests.support.certificates import CA, make_ca, make_leaf, serial_of
from tests.support.server import ServerHandle, free_port, running_server

pytestmark = pytest.mark.model

LOG_WAIT_S = 10.0
START_TIMEOUT_S = 60.0
# Long enough to still be generating after the rotation checks: the tiny model writes about
# 100 tokens/s per stream on two shared vCPUs (some 10 s for these); the checks take < 1 s.
STREAM_TOKENS = 1000


@dataclass(frozen=True)
class Issued:
    """A server certificate and key signed by the test CA."""

    cert: Path
    key: Path


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> CA:
    return make_ca(tmp_path_factory.mktemp("https-ca"), "https-ca")


def _issue(ca: CA, directory: Path) -> Issued:
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = make_leaf(directory, "server", ca, ExtendedKeyUsageOID.SERVER_AUTH)
    return Issued(cert, key)


def _mount(issued: Issued, mounted: Path) -> dict[str, str | Path | bool]:
    """Copy the files over the mounted ones (as a secret update does); server.tls for them."""
    shutil.copyfile(issued.cert, mounted / "tls.crt")
    shutil.copyfile(issued.key, mounted / "tls.key")
    return {"certFile": mounted / "tls.crt", "keyFile": mounted / "tls.key", "https": True}


def _trust(ca: CA) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca[2]))


def _port(server: ServerHandle) -> int:
    return int(server.http_url.rsplit(":", 1)[1])


def _peer_serial(server: ServerHandle, ca: CA) -> int:
    """The serial of the certificate a new TLS connection to the HTTP port is shown."""
    with (
        socket.create_connection(("127.0.0.1", _port(server)), timeout=10) as raw,
        _trust(ca).wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def _openai(server: ServerHandle, ca: CA) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=server.openai_base_url,
        api_key="unused",
        max_retries=0,
        timeout=60,
        # The openai client's own transport, trusting only the test CA.
        http_client=openai.DefaultHttpxClient(verify=_trust(ca)),
    )


@pytest.fixture(scope="module")
def https_server(
    tiny_model_path: Path, ca: CA, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerHandle]:
    mounted = tmp_path_factory.mktemp("https-mounted")
    tls = _mount(_issue(ca, mounted / "issued"), mounted)
    with running_server(tiny_model_path, context_size=1024, tls=tls, ca_file=ca[2]) as server:
        yield server


def test_the_openai_client_works_over_https(https_server: ServerHandle, ca: CA) -> None:
    assert https_server.http_url.startswith("https://")
    with _openai(https_server, ca) as client:
        models = client.models.list()
        reply = client.chat.completions.create(
            model=models.data[0].id,
            messages=[{"role": "user", "content": "Hi"}],
            max_tokens=4,
            temperature=0,
        )
        chunks = list(
            client.chat.completions.create(
                model=models.data[0].id,
                messages=[{"role": "user", "content": "Hi"}],
                max_tokens=4,
                temperature=0,
                stream=True,
            )
        )
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage is not None and reply.usage.completion_tokens == 4
    assert chunks[-1].choices[0].finish_reason == "length"


def test_probes_metrics_and_studio_over_https(https_server: ServerHandle, ca: CA) -> None:
    with httpx.Client(base_url=https_server.http_url, verify=_trust(ca), timeout=10) as http:
        health = http.get("/health")
        ready = http.get("/ready")
        metrics = http.get("/metrics")
        page = http.get("/studio/")
        script = http.get("/studio/studio.js")
        tls_version = health.extensions["network_stream"].get_extra_info("ssl_object").version()
    assert health.status_code == 200 and ready.status_code == 200
    assert metrics.status_code == 200 and "sentiric_llm_sequences_active" in metrics.text
    assert page.status_code == 200 and 'data-testid="send"' in page.text
    # The page calls the API relative to where it was loaded, so over HTTPS it stays on HTTPS.
    assert script.status_code == 200 and "http://" not in script.text
    assert tls_version in ("TLSv1.2", "TLSv1.3")


def test_plain_http_is_refused(https_server: ServerHandle, ca: CA) -> None:
    plain = f"http://127.0.0.1:{_port(https_server)}/health"
    with pytest.raises(httpx.TransportError):
        httpx.get(plain, timeout=10)
    # Still serving TLS clients after the plaintext attempt.
    assert httpx.get(f"{https_server.http_url}/health", verify=_trust(ca)).status_code == 200


def test_a_client_that_does_not_trust_the_ca_is_refused(
    https_server: ServerHandle, tmp_path: Path
) -> None:
    other = make_ca(tmp_path, "other-ca")
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{https_server.http_url}/health", verify=_trust(other), timeout=10)


def test_grpc_keeps_its_tls_with_the_same_files(https_server: ServerHandle, ca: CA) -> None:
    with LlamaClient(https_server.grpc_target, tls=TLSOptions(ca_file=ca[2])) as client:
        done = client.generate("Hi", options=GenerationOptions(max_new_tokens=3), timeout=30)
    assert done.finish.reason == "length"


# --- rotation: the files change under the running server ---


def _wait_for_log(server: ServerHandle, *needles: str) -> str:
    deadline = time.monotonic() + LOG_WAIT_S
    while time.monotonic() < deadline:
        for line in server.log_text().splitlines():
            if all(needle in line for needle in needles):
                return line
        time.sleep(0.1)
    raise AssertionError(f"no log line with {needles}:\n{server.log_text()[-4000:]}")


def _text_of(line: str) -> str:
    """The generated text an SSE line of a chat completion stream carries ("" if none)."""
    if not line.startswith("data: {"):
        return ""
    choices = json.loads(line[len("data: ") :])["choices"]
    return str(choices[0]["delta"].get("content") or "") if choices else ""


def _generating(http: httpx.Client) -> int:
    """Sequences the engine is running now, as /health reports them."""
    active: int = http.get("/health").json()["capacity"]["active"]
    return active


def test_rotated_certificate_reaches_new_connections_while_a_stream_continues(
    tiny_model_path: Path, ca: CA, tmp_path: Path
) -> None:
    first = _issue(ca, tmp_path / "first")
    second = _issue(ca, tmp_path / "second")
    mounted = tmp_path / "mounted"
    mounted.mkdir()
    tls = _mount(first, mounted)
    with (
        running_server(
            tiny_model_path,
            parallel=2,
            context_size=2048,
            extra_config={"sampling": {"maxTokens": STREAM_TOKENS}},
            tls=tls,
            ca_file=ca[2],
        ) as server,
        httpx.Client(base_url=server.http_url, verify=_trust(ca), timeout=60) as streaming,
    ):
        assert _peer_serial(server, ca) == serial_of(first.cert)
        model = streaming.get("/v1/models").json()["data"][0]["id"]
        body = {
            "model": model,
            "messages": [{"role": "user", "content": "Tell me a long story."}],
            "max_tokens": STREAM_TOKENS,
            "temperature": 0,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        with streaming.stream("POST", "/v1/chat/completions", json=body) as response:
            assert response.status_code == 200
            stream_tls = response.extensions["network_stream"].get_extra_info("ssl_object")
            lines = response.iter_lines()
            # In flight: the first generated text has arrived (the role chunk comes earlier).
            assert next(line for line in lines if _text_of(line))

            _mount(second, mounted)

            # A new connection gets the new certificate; the process is the same one.
            assert _peer_serial(server, ca) == serial_of(second.cert)
            with httpx.Client(base_url=server.http_url, verify=_trust(ca), timeout=10) as http:
                # The stream is still generating while new connections are served.
                assert _generating(http) == 1
            with _openai(server, ca) as client:
                reply = client.chat.completions.create(
                    model=model, messages=[{"role": "user", "content": "Hi"}], max_tokens=2
                )
            assert reply.choices[0].finish_reason == "length"
            assert server.process.poll() is None

            # The stream's connection kept the certificate it started with, and finishes.
            kept = x509.load_der_x509_certificate(stream_tls.getpeercert(True))
            assert kept.serial_number == serial_of(first.cert)
            events = [line[len("data: ") :] for line in lines if line.startswith("data: ")]
        assert events[-1] == "[DONE]"
        usage = json.loads(events[-2])["usage"]
        assert usage["completion_tokens"] == STREAM_TOKENS
        line = _wait_for_log(server, "HTTPS TLS certificate reloaded", str(mounted / "tls.crt"))
        assert json.loads(line)["level"] == "INFO"
        assert server.log_text().count("HTTPS TLS certificate reloaded") == 1


def test_a_broken_rotation_keeps_the_previous_certificate(
    tiny_model_path: Path, ca: CA, tmp_path: Path
) -> None:
    first = _issue(ca, tmp_path / "first")
    mounted = tmp_path / "mounted"
    mounted.mkdir()
    with running_server(
        tiny_model_path, context_size=1024, tls=_mount(first, mounted), ca_file=ca[2]
    ) as server:
        # The key of another certificate, as a half-finished manual edit would leave it.
        shutil.copyfile(_issue(ca, tmp_path / "other").key, mounted / "tls.key")
        assert _peer_serial(server, ca) == serial_of(first.cert)
        assert _peer_serial(server, ca) == serial_of(first.cert)
        _wait_for_log(server, "HTTPS TLS files changed but cannot be used", "server.tls.keyFile")
        assert server.log_text().count("HTTPS TLS files changed but cannot be used") == 1


# --- unusable files at start ---


def _start(tiny_model_path: Path, tmp_path: Path, tls: dict[str, str | bool]) -> tuple[int, str]:
    """Run `serve` to its exit with this server.tls; its exit code and stderr."""
    config = {
        "model": {"path": str(tiny_model_path)},
        "engine": {"contextSize": 512, "parallel": 1, "threads": 1},
        "server": {
            "host": "127.0.0.1",
            "httpPort": free_port(),
            "grpcPort": free_port(),
            "tls": tls,
        },
    }
    path = tmp_path / "engine.yaml"
    path.write_text(yaml.safe_dump(config))
    done = subprocess.run(
        [sys.executable, "-m", "sentiric_inference", "serve", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT_S,
        check=False,
    )
    return done.returncode, done.stderr


@pytest.mark.parametrize("problem", ["missing-cert", "key-of-another-cert", "not-pem"])
def test_unusable_files_stop_the_start_naming_the_setting(
    tiny_model_path: Path, ca: CA, tmp_path: Path, problem: str
) -> None:
    issued = _issue(ca, tmp_path / "issued")
    tls: dict[str, str | bool] = {
        "certFile": str(issued.cert),
        "keyFile": str(issued.key),
        "https": True,
    }
    if problem == "missing-cert":
        tls["certFile"] = str(tmp_path / "absent.crt")
        expected = r"server\.tls\.certFile: cannot read .*absent\.crt"
    elif problem == "key-of-another-cert":
        tls["keyFile"] = str(_issue(ca, tmp_path / "other").key)
        expected = r"server\.tls\.keyFile: .* does not match server\.tls\.certFile"
    else:
        (tmp_path / "garbage.key").write_text("not a key")
        tls["keyFile"] = str(tmp_path / "garbage.key")
        expected = r"server\.tls\.keyFile: .*garbage\.key is not a PEM file"
    code, stderr = _start(tiny_model_path, tmp_path, tls)
    assert code == 2, stderr
    assert re.search(rf"^sentiric-llm serve: {expected}", stderr, re.MULTILINE), stderr
    assert "Traceback" not in stderr
