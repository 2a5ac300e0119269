"""Certificate reload without a server (grpc_api.tls.CertificateFiles): when fetch re-reads.

Handshakes against a rotated certificate are in tests/integration/grpc/test_grpc_mtls.py.
"""

from __future__ import annotations

import datetime
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sentiric_inference import tls_files
from sentiric_inference.config import TLSSettings
from sentiric_inference.grpc_api.tls import CertificateFiles, TLSFileError

LOGGER = "sentiric_inference.grpc_api.tls"


@dataclass(frozen=True)
class Pair:
    certificate: bytes
    key: bytes


def _pair(name: str) -> Pair:
    """A self-signed certificate and its key; the pairing check needs nothing more."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return Pair(
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


def _write(directory: Path, pair: Pair, ca: bytes | None = None) -> TLSSettings:
    (directory / "tls.crt").write_bytes(pair.certificate)
    (directory / "tls.key").write_bytes(pair.key)
    if ca is None:
        return TLSSettings(cert_file=directory / "tls.crt", key_file=directory / "tls.key")
    (directory / "ca.crt").write_bytes(ca)
    return TLSSettings(
        cert_file=directory / "tls.crt",
        key_file=directory / "tls.key",
        client_ca_file=directory / "ca.crt",
    )


def _messages(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == level]


def test_unchanged_files_give_no_new_configuration(tmp_path: Path) -> None:
    files = CertificateFiles(_write(tmp_path, _pair("a")))
    assert isinstance(files.initial, grpc.ServerCertificateConfiguration)
    assert files.fetch() is None
    assert files.fetch() is None


def test_replaced_files_are_taken_once_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    files = CertificateFiles(_write(tmp_path, _pair("a"), ca=_pair("ca-1").certificate))
    _write(tmp_path, _pair("b"), ca=_pair("ca-2").certificate)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        assert isinstance(files.fetch(), grpc.ServerCertificateConfiguration)
        assert files.fetch() is None
    assert _messages(caplog, logging.INFO) == [
        f"gRPC TLS certificate reloaded from {tmp_path / 'tls.crt'}"
    ]


def test_a_new_client_ca_alone_is_reloaded(tmp_path: Path) -> None:
    files = CertificateFiles(_write(tmp_path, _pair("a"), ca=_pair("ca-1").certificate))
    (tmp_path / "ca.crt").write_bytes(_pair("ca-2").certificate)
    assert isinstance(files.fetch(), grpc.ServerCertificateConfiguration)


@pytest.mark.parametrize(
    ("file", "content", "message"),
    [
        ("tls.key", b"garbage", r"server\.tls\.keyFile: .*tls\.key is not a PEM file"),
        (
            "tls.key",
            b"-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49",
            r"server\.tls\.keyFile: .*tls\.key is not an unencrypted PEM private key",
        ),
        (
            "tls.crt",
            b"-----BEGIN CERTIFICATE-----\nMIIB",
            r"server\.tls\.certFile: .*tls\.crt holds no valid PEM certificate",
        ),
        (
            "ca.crt",
            b"-----BEGIN CERTIFICATE-----\n",
            r"server\.tls\.clientCAFile: .*ca\.crt holds no valid PEM certificate",
        ),
    ],
)
def test_unusable_file_keeps_the_previous_certificate_and_warns_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, file: str, content: bytes, message: str
) -> None:
    files = CertificateFiles(_write(tmp_path, _pair("a"), ca=_pair("ca").certificate))
    (tmp_path / file).write_bytes(content)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        assert files.fetch() is None
        assert files.fetch() is None
    [warning] = _messages(caplog, logging.WARNING)
    assert warning.startswith("gRPC TLS files changed but cannot be used; serving the previous")
    assert re.search(message, warning), warning
    assert _messages(caplog, logging.INFO) == []
    # Once fixed, the next handshake takes the files.
    _write(tmp_path, _pair("b"), ca=_pair("ca").certificate)
    assert isinstance(files.fetch(), grpc.ServerCertificateConfiguration)


def test_key_of_another_certificate_is_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    files = CertificateFiles(_write(tmp_path, _pair("a")))
    (tmp_path / "tls.key").write_bytes(_pair("b").key)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert files.fetch() is None
    [warning] = _messages(caplog, logging.WARNING)
    assert "server.tls.keyFile" in warning
    assert "does not match server.tls.certFile" in warning


def test_a_removed_file_keeps_the_previous_certificate(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    files = CertificateFiles(_write(tmp_path, _pair("a")))
    (tmp_path / "tls.crt").unlink()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert files.fetch() is None
    [warning] = _messages(caplog, logging.WARNING)
    assert "server.tls.certFile: cannot read" in warning


def test_kubernetes_symlink_swap_is_seen_through_the_link(tmp_path: Path) -> None:
    """A secret volume: tls.crt -> ..data/tls.crt, ..data -> ..<timestamp>, swapped atomically."""
    first, second = tmp_path / "..2024_01", tmp_path / "..2024_02"
    first.mkdir()
    second.mkdir()
    _write(first, _pair("a"))
    _write(second, _pair("b"))
    # Same mtimes, so only the resolved inode tells the files apart.
    for name in ("tls.crt", "tls.key"):
        os.utime(second / name, ns=(0, (first / name).stat().st_mtime_ns))
    (tmp_path / "..data").symlink_to(first.name)
    for name in ("tls.crt", "tls.key"):
        (tmp_path / name).symlink_to(Path("..data") / name)
    files = CertificateFiles(
        TLSSettings(cert_file=tmp_path / "tls.crt", key_file=tmp_path / "tls.key")
    )
    assert files.fetch() is None
    (tmp_path / "..data_tmp").symlink_to(second.name)
    os.replace(tmp_path / "..data_tmp", tmp_path / "..data")
    assert isinstance(files.fetch(), grpc.ServerCertificateConfiguration)


def test_files_changing_while_read_are_judged_when_they_hold_still(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _write(tmp_path, _pair("a"))
    files = CertificateFiles(settings)
    (tmp_path / "tls.key").write_bytes(b"-----BEGIN PRIVATE KEY-----\nhalf")
    real_load = tls_files.load_certificates

    def load_while_the_writer_finishes(tls: TLSSettings) -> object:
        try:
            return real_load(tls)
        finally:
            _write(tmp_path, _pair("b"))

    monkeypatch.setattr(tls_files, "load_certificates", load_while_the_writer_finishes)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert files.fetch() is None
    assert _messages(caplog, logging.WARNING) == []
    monkeypatch.setattr(tls_files, "load_certificates", real_load)
    assert isinstance(files.fetch(), grpc.ServerCertificateConfiguration)


def test_fetch_never_raises_into_grpc(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = CertificateFiles(_write(tmp_path, _pair("a")))
    _write(tmp_path, _pair("b"))

    def broken(tls: TLSSettings) -> object:
        raise RuntimeError("unexpected")

    monkeypatch.setattr(tls_files, "load_certificates", broken)
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        assert files.fetch() is None
    assert _messages(caplog, logging.ERROR) == [
        "gRPC TLS reload failed; serving the previous certificate"
    ]


@pytest.mark.parametrize(
    ("file", "message"),
    [
        ("tls.key", r"server\.tls\.keyFile: .* does not match server\.tls\.certFile"),
        ("tls.crt", r"server\.tls\.certFile: .*tls\.crt holds no valid PEM certificate"),
    ],
)
def test_unusable_files_at_start_name_the_config_key(
    tmp_path: Path, file: str, message: str
) -> None:
    settings = _write(tmp_path, _pair("a"))
    if file == "tls.key":
        (tmp_path / "tls.key").write_bytes(_pair("b").key)
    else:
        (tmp_path / "tls.crt").write_bytes(b"-----BEGIN CERTIFICATE-----\nnot base64\n")
    with pytest.raises(TLSFileError, match=message):
        CertificateFiles(settings)
