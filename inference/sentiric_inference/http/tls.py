"""HTTPS on the HTTP port (`server.tls.https`): an SSLContext that follows the certificate files.

uvicorn gets one context for its listening socket and wraps every accepted connection in
it. Its SNI callback runs in each handshake (also when the client sends no server name, as
clients connecting to an IP address do): it asks the shared file watch (tls_files.py, the
same one gRPC uses) whether the files changed and, if so, switches that handshake, and every
later one, to a context holding the new certificate. Connections already open keep theirs.
"""

from __future__ import annotations

import logging
import ssl

from sentiric_inference.config import TLSSettings
from sentiric_inference.tls_files import WatchedFiles

logger = logging.getLogger(__name__)


def _harden(context: ssl.SSLContext) -> ssl.SSLContext:
    # TLS 1.2 is the oldest version current browsers, curl and the openai client still offer.
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # uvicorn speaks HTTP/1.1 only; saying so lets clients that offer h2 settle at once.
    context.set_alpn_protocols(["http/1.1"])
    return context


class ReloadingContext:
    """The listening context, and the newest context once the files were rotated."""

    def __init__(self, tls: TLSSettings) -> None:
        self._files = WatchedFiles(tls, surface="HTTPS", log=logger)
        self.context = _harden(self._files.initial.server_context)
        self._current = self.context
        self.context.sni_callback = self._pick

    def _pick(
        self, connection: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, _: ssl.SSLContext
    ) -> None:
        # Runs inside OpenSSL's handshake; WatchedFiles.changed never raises, and an
        # exception escaping here would abort the handshake instead of serving a certificate.
        contents = self._files.changed()
        if contents is not None:
            try:
                self._current = _harden(contents.server_context)
            except (ssl.SSLError, ValueError):
                logger.exception("HTTPS context rebuild failed; serving the previous certificate")
        if self._current is not self.context:
            connection.context = self._current


def server_context(tls: TLSSettings) -> ssl.SSLContext:
    """The context uvicorn listens with; raises TLSFileError (naming the key) on unusable files."""
    return ReloadingContext(tls).context
