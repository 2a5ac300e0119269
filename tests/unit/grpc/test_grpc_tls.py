"""Server credentials from server.tls files (grpc_api.tls); handshakes are integration tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from sentiric_inference.config import TLSSettings
from sentiric_inference.grpc_api.tls import TLSFileError, server_credentials


def test_missing_file_names_the_config_key(tmp_path: Path) -> None:
    cert = tmp_path / "tls.crt"
    cert.write_text("-----BEGIN CERTIFICATE-----\n")
    settings = TLSSettings(cert_file=cert, key_file=tmp_path / "absent.key")
    with pytest.raises(TLSFileError, match=r"server\.tls\.keyFile: cannot read .*absent\.key"):
        server_credentials(settings)


def test_non_pem_file_is_refused(tmp_path: Path) -> None:
    cert = tmp_path / "tls.crt"
    cert.write_text("-----BEGIN CERTIFICATE-----\n")
    key = tmp_path / "tls.key"
    key.write_text("-----BEGIN PRIVATE KEY-----\n")
    ca = tmp_path / "ca.crt"
    ca.write_bytes(b"\x00\x01binary")
    settings = TLSSettings(cert_file=cert, key_file=key, client_ca_file=ca)
    with pytest.raises(TLSFileError, match=r"server\.tls\.clientCAFile: .* is not a PEM file"):
        server_credentials(settings)
