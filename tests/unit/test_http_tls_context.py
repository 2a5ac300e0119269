"""The HTTPS listening context (http/tls.py) in real TLS handshakes over memory BIOs.

No sockets: OpenSSL runs both ends in this process, so each test shows which certificate a
new handshake is given as the files change. Over real sockets: tests/integration/http/test_https.py.
"""

from __future__ import annotations

import logging
import os
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from sentiric_inference.config import TLSSettings
from sentiric_inference.http.tls import server_context
from sentiric_inference.tls_files import TLSFileError

from tests.support.certificates import CA, make_ca, make_leaf, serial_of

LOGGER = "sentiric_inference.http.tls"
# Handshake round trips; TLS 1.3 needs two or three.
MAX_ROUNDS = 10


def _handshake(server: ssl.SSLContext, ca: CA) -> ssl.SSLObject:
    """A full handshake of a client trusting `ca` against `server`; the client's end."""
    client_context = ssl.create_default_context(cafile=str(ca[2]))
    to_server, to_client = ssl.MemoryBIO(), ssl.MemoryBIO()
    from_server, from_client = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_context.wrap_bio(to_client, from_client, server_hostname="localhost")
    peer = server.wrap_bio(to_server, from_server, server_side=True)
    for _ in range(MAX_ROUNDS):
        done = 0
        for end in (client, peer):
            try:
                end.do_handshake()
                done += 1
            except ssl.SSLWantReadError:
                pass
        to_server.write(from_client.read())
        to_client.write(from_server.read())
        if done == 2:
            return client
    raise AssertionError("handshake did not finish")


def _served_serial(server: ssl.SSLContext, ca: CA) -> int:
    der = _handshake(server, ca).getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def _issue(ca: CA, directory: Path, name: str) -> tuple[Path, Path]:
    return make_leaf(directory, name, ca, ExtendedKeyUsageOID.SERVER_AUTH)


def _settings(directory: Path, cert: Path, key: Path) -> TLSSettings:
    (directory / "tls.crt").write_bytes(cert.read_bytes())
    (directory / "tls.key").write_bytes(key.read_bytes())
    return TLSSettings(cert_file=directory / "tls.crt", key_file=directory / "tls.key", https=True)


@pytest.fixture
def ca(tmp_path: Path) -> CA:
    return make_ca(tmp_path, "ca")


def test_serves_the_configured_certificate_and_no_older_tls(ca: CA, tmp_path: Path) -> None:
    cert, key = _issue(ca, tmp_path, "first")
    context = server_context(_settings(tmp_path, cert, key))
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.verify_mode == ssl.CERT_NONE  # no client certificates on HTTP
    client = _handshake(context, ca)
    assert client.selected_alpn_protocol() is None  # the client offered none
    der = client.getpeercert(binary_form=True)
    assert der is not None
    assert x509.load_der_x509_certificate(der).serial_number == serial_of(cert)


def test_rotated_files_reach_the_next_handshake_and_are_logged_once(
    ca: CA, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first_cert, first_key = _issue(ca, tmp_path, "first")
    second_cert, second_key = _issue(ca, tmp_path, "second")
    mounted = tmp_path / "mounted"
    mounted.mkdir()
    context = server_context(_settings(mounted, first_cert, first_key))
    assert _served_serial(context, ca) == serial_of(first_cert)
    _settings(mounted, second_cert, second_key)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        assert _served_serial(context, ca) == serial_of(second_cert)
        assert _served_serial(context, ca) == serial_of(second_cert)
    messages = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert messages == [f"HTTPS TLS certificate reloaded from {mounted / 'tls.crt'}"]


def test_kubernetes_symlink_swap_is_followed(ca: CA, tmp_path: Path) -> None:
    """A secret volume: tls.crt -> ..data/tls.crt, and ..data swapped to a new directory."""
    first, second = tmp_path / "..2024_01", tmp_path / "..2024_02"
    first.mkdir()
    second.mkdir()
    first_files = _settings(first, *_issue(ca, tmp_path, "first"))
    _settings(second, *_issue(ca, tmp_path, "second"))
    (tmp_path / "..data").symlink_to(first.name)
    for name in ("tls.crt", "tls.key"):
        (tmp_path / name).symlink_to(Path("..data") / name)
    context = server_context(
        TLSSettings(cert_file=tmp_path / "tls.crt", key_file=tmp_path / "tls.key", https=True)
    )
    assert _served_serial(context, ca) == serial_of(first_files.cert_file)
    (tmp_path / "..data_tmp").symlink_to(second.name)
    os.replace(tmp_path / "..data_tmp", tmp_path / "..data")
    assert _served_serial(context, ca) == serial_of(second / "tls.crt")


def test_unusable_rotation_keeps_the_previous_certificate(
    ca: CA, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cert, key = _issue(ca, tmp_path, "first")
    mounted = tmp_path / "mounted"
    mounted.mkdir()
    context = server_context(_settings(mounted, cert, key))
    (mounted / "tls.key").write_bytes(_issue(ca, tmp_path, "other")[1].read_bytes())
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert _served_serial(context, ca) == serial_of(cert)
        assert _served_serial(context, ca) == serial_of(cert)
    [warning] = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert warning.startswith("HTTPS TLS files changed but cannot be used")
    assert "server.tls.keyFile" in warning and "does not match server.tls.certFile" in warning


def test_unusable_files_at_start_name_the_setting(ca: CA, tmp_path: Path) -> None:
    cert, _ = _issue(ca, tmp_path, "first")
    settings = TLSSettings(cert_file=cert, key_file=tmp_path / "absent.key", https=True)
    with pytest.raises(TLSFileError, match=r"server\.tls\.keyFile: cannot read .*absent\.key"):
        server_context(settings)
