"""mTLS on the gRPC port: clients signed by the configured CA get in, others are refused.

The certificates are generated per test session with `cryptography`.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from sentiric_inference.client import GenerationOptions, LlamaClient, TLSOptions

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


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def _write_cert(cert: x509.Certificate, path: Path) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def _builder(
    subject: str, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
    )


def _ca(directory: Path, name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        _builder(name, _name(name), key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return cert, key, _write_cert(cert, directory / f"{name}.crt")


def _leaf(
    directory: Path,
    name: str,
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey, Path],
    usage: x509.ObjectIdentifier,
) -> tuple[Path, Path]:
    ca_cert, ca_key, _ = ca
    key = ec.generate_private_key(ec.SECP256R1())
    builder = _builder(name, ca_cert.subject, key.public_key()).add_extension(
        x509.ExtendedKeyUsage([usage]), critical=False
    )
    if usage == ExtendedKeyUsageOID.SERVER_AUTH:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    cert = builder.sign(ca_key, hashes.SHA256())
    return _write_cert(cert, directory / f"{name}.crt"), _write_key(key, directory / f"{name}.key")


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    directory = tmp_path_factory.mktemp("certs")
    ca = _ca(directory, "test-ca")
    rogue_ca = _ca(directory, "rogue-ca")
    server_cert, server_key = _leaf(directory, "server", ca, ExtendedKeyUsageOID.SERVER_AUTH)
    client_cert, client_key = _leaf(directory, "client", ca, ExtendedKeyUsageOID.CLIENT_AUTH)
    rogue_cert, rogue_key = _leaf(directory, "rogue", rogue_ca, ExtendedKeyUsageOID.CLIENT_AUTH)
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
