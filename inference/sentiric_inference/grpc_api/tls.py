"""gRPC server credentials from the mounted certificate files (`server.tls` in engine.yaml)."""

from __future__ import annotations

from pathlib import Path

import grpc

from sentiric_inference.config import TLSSettings


class TLSFileError(ValueError):
    """A configured certificate or key file cannot be read; names the config key."""


def _read(path: Path, key: str) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TLSFileError(f"server.tls.{key}: cannot read {path}: {exc.strerror}") from exc
    if b"-----BEGIN" not in data:
        raise TLSFileError(f"server.tls.{key}: {path} is not a PEM file")
    return data


def server_credentials(tls: TLSSettings) -> grpc.ServerCredentials:
    """TLS credentials; with clientCAFile, clients must present a certificate that CA signed."""
    certificate = _read(tls.cert_file, "certFile")
    key = _read(tls.key_file, "keyFile")
    if tls.client_ca_file is None:
        return grpc.ssl_server_credentials([(key, certificate)])
    client_ca = _read(tls.client_ca_file, "clientCAFile")
    return grpc.ssl_server_credentials(
        [(key, certificate)], root_certificates=client_ca, require_client_auth=True
    )
