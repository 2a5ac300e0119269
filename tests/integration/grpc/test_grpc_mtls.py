"""mTLS on the gRPC port: clients signed by the configured CA get in, others are refused.

Certificates rotated in place are taken by new connections without a restart, and a broken
file keeps the previous certificate serving. The certificates are generated with
`cryptography`.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID
from sentiric_inference.client import GenerationOptions, LlamaClient, TLSOptions

from tests.support.certificates import make_ca, make_leaf
from tests.support.server import ServerHandle, running_server

pytestmark = pytest.mark.model


@dataclass(frozen=True)
class Certificates:
    """PEM files: a CA, a server certificate for 127.0.0.1/localhost, clients of two CAs."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    # Signed by a different CA than the server trusts.
    rogue_cert: Path
    rogue_key: Path


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    directory = tmp_path_factory.mktemp("certs")
    ca = make_ca(directory, "test-ca")
    rogue_ca = make_ca(directory, "rogue-ca")
    server_cert, server_key = make_leaf(directory, "server", ca, ExtendedKeyUsageOID.SERVER_AUTH)
    client_cert, client_key = make_leaf(directory, "client", ca, ExtendedKeyUsageOID.CLIENT_AUTH)
    rogue_cert, rogue_key = make_leaf(directory, "rogue", rogue_ca, ExtendedKeyUsageOID.CLIENT_AUTH)
    return Certificates(
        ca=ca[2],
        server_cert=server_cert,
        server_key=server_key,
        client_cert=client_cert,
        client_key=client_key,
        rogue_cert=rogue_cert,
        rogue_key=rogue_key,
    )


@pytest.fixture(scope="module")
def mtls_server(tiny_model_path: Path, certificates: Certificates) -> Iterator[ServerHandle]:
    tls = {
        "certFile": certificates.server_cert,
        "keyFile": certificates.server_key,
        "clientCAFile": certificates.ca,
    }
    with running_server(tiny_model_path, tls=tls) as server:
        yield server


def test_mtls_accepts_a_client_signed_by_the_ca(
    mtls_server: ServerHandle, certificates: Certificates
) -> None:
    tls = TLSOptions(
        ca_file=certificates.ca,
        cert_file=certificates.client_cert,
        key_file=certificates.client_key,
    )
    with LlamaClient(mtls_server.grpc_target, tls=tls) as client:
        done = client.generate("Hi", options=GenerationOptions(max_new_tokens=3), timeout=30)
    assert done.finish.reason == "length"


@pytest.mark.parametrize("client", ["no-certificate", "rogue-certificate", "plaintext"])
def test_mtls_refuses_other_clients(
    mtls_server: ServerHandle, certificates: Certificates, client: str
) -> None:
    if client == "no-certificate":
        tls: TLSOptions | None = TLSOptions(ca_file=certificates.ca)
    elif client == "rogue-certificate":
        tls = TLSOptions(
            ca_file=certificates.ca,
            cert_file=certificates.rogue_cert,
            key_file=certificates.rogue_key,
        )
    else:
        tls = None
    with (
        LlamaClient(mtls_server.grpc_target, tls=tls) as llama,
        pytest.raises(grpc.RpcError) as info,
    ):
        llama.generate("Hi", options=GenerationOptions(max_new_tokens=3), timeout=10)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
    # And the server still serves the legitimate client afterwards.
    good = TLSOptions(
        ca_file=certificates.ca,
        cert_file=certificates.client_cert,
        key_file=certificates.client_key,
    )
    with LlamaClient(mtls_server.grpc_target, tls=good) as llama:
        assert (
            llama.generate("Hi", options=GenerationOptions(max_new_tokens=2)).finish.reason
            == "length"
        )


# --- rotation: the certificate files change under a running server ---

LOG_WAIT_S = 10.0


@dataclass(frozen=True)
class Generation:
    """One issue of the secret: a CA, a server certificate it signed, a client it signed."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _generation(directory: Path, name: str) -> Generation:
    directory.mkdir()
    ca = make_ca(directory, f"{name}-ca")
    server_cert, server_key = make_leaf(directory, "server", ca, ExtendedKeyUsageOID.SERVER_AUTH)
    client_cert, client_key = make_leaf(directory, "client", ca, ExtendedKeyUsageOID.CLIENT_AUTH)
    return Generation(ca[2], server_cert, server_key, client_cert, client_key)


def _install(generation: Generation, mounted: Path, mtls: bool) -> None:
    """Overwrite the mounted files in place, as an operator editing the secret would."""
    shutil.copyfile(generation.server_cert, mounted / "tls.crt")
    shutil.copyfile(generation.server_key, mounted / "tls.key")
    if mtls:
        shutil.copyfile(generation.ca, mounted / "client-ca.crt")


def _server_tls(mounted: Path, mtls: bool) -> dict[str, Path]:
    tls = {"certFile": mounted / "tls.crt", "keyFile": mounted / "tls.key"}
    if mtls:
        tls["clientCAFile"] = mounted / "client-ca.crt"
    return tls


def _client(generation: Generation, mtls: bool, trust: Path | None = None) -> TLSOptions:
    """Trusts only `trust` (default: the generation's CA); with mTLS, shows its client cert."""
    ca = trust or generation.ca
    if not mtls:
        return TLSOptions(ca_file=ca)
    return TLSOptions(ca_file=ca, cert_file=generation.client_cert, key_file=generation.client_key)


def _generate(server: ServerHandle, tls: TLSOptions) -> str:
    # Every LlamaClient opens a new channel, so each call is a new TLS handshake.
    with LlamaClient(server.grpc_target, tls=tls) as client:
        done = client.generate("Hi", options=GenerationOptions(max_new_tokens=3), timeout=30)
    return done.finish.reason


def _refused(server: ServerHandle, tls: TLSOptions) -> grpc.StatusCode:
    with (
        LlamaClient(server.grpc_target, tls=tls) as client,
        pytest.raises(grpc.RpcError) as info,
    ):
        client.generate("Hi", options=GenerationOptions(max_new_tokens=3), timeout=10)
    code: grpc.StatusCode = info.value.code()  # type: ignore[attr-defined]
    return code


def _wait_for_log(server: ServerHandle, *needles: str) -> str:
    """The first server log line holding every needle (bounded wait; logs are flushed)."""
    deadline = time.monotonic() + LOG_WAIT_S
    while time.monotonic() < deadline:
        for line in server.log_text().splitlines():
            if all(needle in line for needle in needles):
                return line
        time.sleep(0.1)
    raise AssertionError(f"no log line with {needles}:\n{server.log_text()[-4000:]}")


@pytest.mark.parametrize("mode", ["tls", "mtls"])
def test_rotated_certificate_is_used_by_new_connections_without_restart(
    tiny_model_path: Path, tmp_path: Path, mode: str
) -> None:
    mtls = mode == "mtls"
    first = _generation(tmp_path / "first", "first")
    second = _generation(tmp_path / "second", "second")
    mounted = tmp_path / "mounted"
    mounted.mkdir()
    _install(first, mounted, mtls)
    with running_server(tiny_model_path, tls=_server_tls(mounted, mtls)) as server:
        assert _generate(server, _client(first, mtls)) == "length"

        _install(second, mounted, mtls)

        assert _generate(server, _client(second, mtls)) == "length"
        assert _refused(server, _client(first, mtls)) == grpc.StatusCode.UNAVAILABLE
        if mtls:
            # The client CA was reloaded too: a client of the old CA is no longer accepted.
            old_client = _client(first, mtls, trust=second.ca)
            assert _refused(server, old_client) == grpc.StatusCode.UNAVAILABLE
        # Still the process started with the first certificate: nothing restarted it.
        assert server.process.poll() is None
        line = _wait_for_log(server, "gRPC TLS certificate reloaded", str(mounted / "tls.crt"))
        assert json.loads(line)["level"] == "INFO"
        assert server.log_text().count("gRPC TLS certificate reloaded") == 1


def test_broken_file_keeps_the_previous_certificate_serving(
    tiny_model_path: Path, tmp_path: Path
) -> None:
    first = _generation(tmp_path / "first", "first")
    second = _generation(tmp_path / "second", "second")
    mounted = tmp_path / "mounted"
    mounted.mkdir()
    _install(first, mounted, mtls=True)
    with running_server(tiny_model_path, tls=_server_tls(mounted, mtls=True)) as server:
        # Half a key, as a writer cut off midway would leave it.
        key = first.server_key.read_bytes()
        (mounted / "tls.key").write_bytes(key[: len(key) // 2])

        assert _generate(server, _client(first, mtls=True)) == "length"
        assert _generate(server, _client(first, mtls=True)) == "length"
        line = _wait_for_log(server, "cannot be used", "server.tls.keyFile")
        assert json.loads(line)["level"] == "WARNING"
        # One warning for the broken file, not one per handshake.
        assert server.log_text().count("cannot be used") == 1

        # Once the secret holds a whole new generation, it is taken.
        _install(second, mounted, mtls=True)
        assert _generate(server, _client(second, mtls=True)) == "length"
        assert server.process.poll() is None
