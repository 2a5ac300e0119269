"""gRPC server credentials from the mounted certificate files (`server.tls`), reloaded on change.

gRPC asks `CertificateFiles.fetch` before every new handshake; it stats the files and only
re-reads and checks them when one changed, so a rotated Kubernetes secret (cert-manager)
is taken into use by new connections without a restart. Existing connections keep their
session.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

import grpc

from sentiric_inference.config import TLSSettings

logger = logging.getLogger(__name__)

# (device, inode, mtime in ns, size) of the file a path resolves to; None when stat fails.
FileStamp = tuple[int, int, int, int] | None


class TLSFileError(ValueError):
    """A configured certificate or key file cannot be used; names the config key."""


@dataclass(frozen=True)
class _Contents:
    certificate: bytes
    key: bytes
    client_ca: bytes | None


def _stamp(path: Path) -> FileStamp:
    # os.stat follows symlinks: a Kubernetes secret volume swaps its `..data` symlink to a
    # new directory, so the link path never changes but the resolved file's inode does.
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (stat.st_dev, stat.st_ino, stat.st_mtime_ns, stat.st_size)


def _read(path: Path, key: str) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TLSFileError(f"server.tls.{key}: cannot read {path}: {exc.strerror}") from exc
    if b"-----BEGIN" not in data:
        raise TLSFileError(f"server.tls.{key}: {path} is not a PEM file")
    return data


def _check_certificates(data: bytes, path: Path, key: str) -> None:
    """Every PEM block in `data` parses as a certificate (stdlib OpenSSL, no extra dependency)."""
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_verify_locations(cadata=data.decode("ascii"))
    except (UnicodeDecodeError, ssl.SSLError) as exc:
        raise TLSFileError(f"server.tls.{key}: {path} holds no valid PEM certificate") from exc


def _check_key(tls: TLSSettings) -> None:
    """The key file parses and belongs to the certificate (OpenSSL's own pairing check)."""
    try:
        # An empty password refuses an encrypted key instead of letting OpenSSL prompt on
        # a terminal; gRPC cannot use encrypted keys either.
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(
            tls.cert_file, tls.key_file, password=b""
        )
    except ssl.SSLError as exc:
        problem = (
            "does not match server.tls.certFile"
            if exc.reason == "KEY_VALUES_MISMATCH"
            else "is not an unencrypted PEM private key"
        )
        raise TLSFileError(f"server.tls.keyFile: {tls.key_file} {problem}") from exc
    except OSError as exc:
        raise TLSFileError(f"server.tls.keyFile: cannot read {tls.key_file}") from exc


def _load(tls: TLSSettings) -> _Contents:
    """Read and check the files; raises TLSFileError naming the first bad config key."""
    certificate = _read(tls.cert_file, "certFile")
    key = _read(tls.key_file, "keyFile")
    client_ca = None
    if tls.client_ca_file is not None:
        client_ca = _read(tls.client_ca_file, "clientCAFile")
    _check_certificates(certificate, tls.cert_file, "certFile")
    # The pairing check reads the files by path again; callers compare stamps taken before
    # and after, so it checked the same bytes that were read above.
    _check_key(tls)
    if client_ca is not None and tls.client_ca_file is not None:
        _check_certificates(client_ca, tls.client_ca_file, "clientCAFile")
    return _Contents(certificate, key, client_ca)


def _configuration(contents: _Contents) -> grpc.ServerCertificateConfiguration:
    return grpc.ssl_server_certificate_configuration(
        [(contents.key, contents.certificate)], root_certificates=contents.client_ca
    )


class CertificateFiles:
    """The certificate configuration of the files in `server.tls`, re-read when they change."""

    def __init__(self, tls: TLSSettings) -> None:
        self._tls = tls
        self._lock = threading.Lock()
        stamps = self._stamps()
        self.initial = _configuration(_load(tls))
        # If the files changed while being loaded, the next handshake loads them again.
        self._seen = stamps

    def _stamps(self) -> tuple[FileStamp, ...]:
        paths = [self._tls.cert_file, self._tls.key_file]
        if self._tls.client_ca_file is not None:
            paths.append(self._tls.client_ca_file)
        return tuple(_stamp(path) for path in paths)

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """The new configuration when the files changed, else None (keep the current one).

        Called by gRPC before each new handshake, so it must be cheap and never raise: an
        exception here would fail the handshake instead of serving the previous certificate.
        """
        try:
            return self._fetch()
        except Exception:
            logger.exception("gRPC TLS reload failed; serving the previous certificate")
            return None

    def _fetch(self) -> grpc.ServerCertificateConfiguration | None:
        stamps = self._stamps()
        with self._lock:
            if stamps == self._seen:
                return None
            try:
                contents = _load(self._tls)
            except TLSFileError as exc:
                if self._stamps() != stamps:
                    # Still being written; judge the files once they hold still.
                    return None
                # Remembered so a bad file is reported once, not on every handshake.
                self._seen = stamps
                logger.warning(
                    "gRPC TLS files changed but cannot be used; serving the previous "
                    "certificate: %s",
                    exc,
                )
                return None
            if self._stamps() != stamps:
                return None
            self._seen = stamps
        logger.info("gRPC TLS certificate reloaded from %s", self._tls.cert_file)
        return _configuration(contents)


def server_credentials(tls: TLSSettings) -> grpc.ServerCredentials:
    """TLS credentials that follow the files; with clientCAFile, client certificates are required.

    Raises TLSFileError (naming the `server.tls` key) when the files cannot be used at start.
    """
    files = CertificateFiles(tls)
    return grpc.dynamic_ssl_server_credentials(
        files.initial,
        # grpcio documents None as "no change"; the grpc-stubs signature omits it.
        files.fetch,  # type: ignore[arg-type]
        require_client_authentication=tls.client_ca_file is not None,
    )
