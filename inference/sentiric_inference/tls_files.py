"""The certificate files of `server.tls`, checked when read and re-read when they change.

Shared by the gRPC port (grpc_api/tls.py) and, with `server.tls.https`, the HTTP port
(http/tls.py). Each asks `WatchedFiles.changed` before every new handshake; it stats the
files and only re-reads and checks them when one changed, so a rotated Kubernetes secret
(cert-manager) is taken into use by new connections without a restart, while existing
connections keep their session.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

from sentiric_inference.config import TLSSettings

# (device, inode, mtime in ns, size) of the file a path resolves to; None when stat fails.
FileStamp = tuple[int, int, int, int] | None


class TLSFileError(ValueError):
    """A configured certificate or key file cannot be used; names the config key."""


@dataclass(frozen=True)
class CertificateContents:
    """One consistent read of the files."""

    certificate: bytes
    key: bytes
    client_ca: bytes | None
    # A server-side context that loaded this certificate and key (the pairing check's own),
    # for the HTTPS listener; it verifies no client certificates.
    server_context: ssl.SSLContext


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


def _paired_context(tls: TLSSettings) -> ssl.SSLContext:
    """The key file parses and belongs to the certificate (OpenSSL's own pairing check)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        # An empty password refuses an encrypted key instead of letting OpenSSL prompt on
        # a terminal; gRPC cannot use encrypted keys either.
        context.load_cert_chain(tls.cert_file, tls.key_file, password=b"")
    except ssl.SSLError as exc:
        problem = (
            "does not match server.tls.certFile"
            if exc.reason == "KEY_VALUES_MISMATCH"
            else "is not an unencrypted PEM private key"
        )
        raise TLSFileError(f"server.tls.keyFile: {tls.key_file} {problem}") from exc
    except OSError as exc:
        raise TLSFileError(f"server.tls.keyFile: cannot read {tls.key_file}") from exc
    return context


def load_certificates(tls: TLSSettings) -> CertificateContents:
    """Read and check the files; raises TLSFileError naming the first bad config key."""
    certificate = _read(tls.cert_file, "certFile")
    key = _read(tls.key_file, "keyFile")
    client_ca = None
    if tls.client_ca_file is not None:
        client_ca = _read(tls.client_ca_file, "clientCAFile")
    _check_certificates(certificate, tls.cert_file, "certFile")
    # The pairing check reads the files by path again; callers compare stamps taken before
    # and after, so it checked (and its context holds) the same bytes that were read above.
    context = _paired_context(tls)
    if client_ca is not None and tls.client_ca_file is not None:
        _check_certificates(client_ca, tls.client_ca_file, "clientCAFile")
    return CertificateContents(certificate, key, client_ca, context)


class WatchedFiles:
    """The files of `server.tls`: `initial` at start, then `changed()` per new handshake.

    `surface` ("gRPC", "HTTPS") and `log` name the listener in the reload messages.
    """

    def __init__(self, tls: TLSSettings, *, surface: str, log: logging.Logger) -> None:
        self._tls = tls
        self._surface = surface
        self._log = log
        self._lock = threading.Lock()
        stamps = self._stamps()
        self.initial = load_certificates(tls)
        # If the files changed while being loaded, the next handshake loads them again.
        self._seen = stamps

    def _stamps(self) -> tuple[FileStamp, ...]:
        paths = [self._tls.cert_file, self._tls.key_file]
        if self._tls.client_ca_file is not None:
            paths.append(self._tls.client_ca_file)
        return tuple(_stamp(path) for path in paths)

    def changed(self) -> CertificateContents | None:
        """The new contents when the files changed and are usable, else None (keep the current).

        Called before each new handshake, so it must be cheap and never raise: an exception
        here would fail the handshake instead of serving the previous certificate.
        """
        try:
            return self._changed()
        except Exception:
            self._log.exception(
                "%s TLS reload failed; serving the previous certificate", self._surface
            )
            return None

    def _changed(self) -> CertificateContents | None:
        stamps = self._stamps()
        with self._lock:
            if stamps == self._seen:
                return None
            try:
                contents = load_certificates(self._tls)
            except TLSFileError as exc:
                if self._stamps() != stamps:
                    # Still being written; judge the files once they hold still.
                    return None
                # Remembered so a bad file is reported once, not on every handshake.
                self._seen = stamps
                self._log.warning(
                    "%s TLS files changed but cannot be used; serving the previous certificate: %s",
                    self._surface,
                    exc,
                )
                return None
            if self._stamps() != stamps:
                return None
            self._seen = stamps
        self._log.info("%s TLS certificate reloaded from %s", self._surface, self._tls.cert_file)
        return contents
