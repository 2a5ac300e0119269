"""gRPC server credentials from the mounted certificate files (`server.tls`), reloaded on change.

gRPC asks `CertificateFiles.fetch` before every new handshake; the files are re-read and
checked only when one changed (tls_files.py), so a rotated Kubernetes secret (cert-manager)
is taken into use by new connections without a restart.
"""

from __future__ import annotations

import logging

import grpc

from sentiric_inference.config import TLSSettings
from sentiric_inference.tls_files import CertificateContents, TLSFileError, WatchedFiles

__all__ = ["CertificateFiles", "TLSFileError", "server_credentials"]

logger = logging.getLogger(__name__)


def _configuration(contents: CertificateContents) -> grpc.ServerCertificateConfiguration:
    return grpc.ssl_server_certificate_configuration(
        [(contents.key, contents.certificate)], root_certificates=contents.client_ca
    )


class CertificateFiles:
    """The certificate configuration of the files in `server.tls`, re-read when they change."""

    def __init__(self, tls: TLSSettings) -> None:
        self._files = WatchedFiles(tls, surface="gRPC", log=logger)
        self.initial = _configuration(self._files.initial)

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """The new configuration when the files changed, else None (keep the current one).

        Never raises (WatchedFiles.changed logs what went wrong): an exception would fail
        the handshake instead of serving the previous certificate.
        """
        contents = self._files.changed()
        return None if contents is None else _configuration(contents)


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
