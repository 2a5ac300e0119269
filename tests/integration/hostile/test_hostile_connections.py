"""Slow and bloated clients: idle sockets, partial headers, short bodies, huge headers.

The server used to wait forever for all of them (1,000 such connections held 60 s, none
closed). Each must now be answered (408 / 431) or dropped within the read timeout.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from urllib.parse import urlsplit

import pytest

from tests.integration.hostile.conftest import READ_TIMEOUT_S, TALLY, Prober
from tests.support.hostile import REFUSED

pytestmark = pytest.mark.model

# The deadline plus the timer's and the scheduler's slack on a busy 2-CPU machine.
MARGIN_S = 3.0


@contextmanager
def connected(probe: Prober) -> Iterator[socket.socket]:
    url = urlsplit(probe.server.http_url)
    sock = socket.create_connection((url.hostname, url.port), timeout=READ_TIMEOUT_S + MARGIN_S)
    try:
        yield sock
    finally:
        sock.close()


def read_until_closed(sock: socket.socket, deadline: float) -> bytes:
    """Everything the server sends until it closes; raises TimeoutError past `deadline`."""
    received = b""
    while time.monotonic() < deadline:
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk
    raise TimeoutError(f"still open after the deadline; got {received[:200]!r}")


def record(probe: Prober, case: str, ok: bool, detail: str) -> None:
    probe._record(case, REFUSED if ok else "hang", detail, REFUSED)


def drip(sock: socket.socket, data: bytes, interval: float, deadline: float) -> bytes:
    """Send `data` a byte at a time; return what the server sent once it hung up."""
    for byte in data:
        try:
            sock.sendall(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            break
        if time.monotonic() > deadline:
            break
        time.sleep(interval)
    return read_until_closed(sock, deadline)


REQUEST_HEAD = (
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
)


def test_idle_connection_is_dropped(probe: Prober) -> None:
    with connected(probe) as sock:
        started = time.monotonic()
        read_until_closed(sock, started + READ_TIMEOUT_S + MARGIN_S)
        waited = time.monotonic() - started
    record(probe, "idle connection", waited >= READ_TIMEOUT_S * 0.9, f"closed after {waited:.1f}s")


def test_partial_headers_are_dropped(probe: Prober) -> None:
    with connected(probe) as sock:
        sock.sendall(REQUEST_HEAD)
        started = time.monotonic()
        read_until_closed(sock, started + READ_TIMEOUT_S + MARGIN_S)
    record(probe, "partial headers", True, "")


def test_headers_dripped_a_byte_at_a_time_are_dropped(probe: Prober) -> None:
    with connected(probe) as sock:
        started = time.monotonic()
        drip(sock, REQUEST_HEAD * 20, 0.05, started + READ_TIMEOUT_S + MARGIN_S)
        waited = time.monotonic() - started
    record(probe, "dripped headers", waited < READ_TIMEOUT_S + MARGIN_S, f"{waited:.1f}s")


def test_body_shorter_than_content_length_gets_408(probe: Prober) -> None:
    with connected(probe) as sock:
        sock.sendall(REQUEST_HEAD + b"Content-Length: 1000\r\n\r\n" + b'{"model": ')
        reply = read_until_closed(sock, time.monotonic() + READ_TIMEOUT_S + MARGIN_S)
    assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
    assert b"request_timeout" in reply
    record(probe, "body shorter than Content-Length", True, "")


def test_dripped_body_gets_408(probe: Prober) -> None:
    body = b'{"model": "hostile", "messages": [{"role": "user", "content": "hi"}]}'
    with connected(probe) as sock:
        sock.sendall(REQUEST_HEAD + b"Content-Length: %d\r\n\r\n" % len(body))
        started = time.monotonic()
        reply = drip(sock, body, 0.2, started + READ_TIMEOUT_S + MARGIN_S)
    assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
    record(probe, "dripped body", True, "")


def test_huge_headers_get_431(probe: Prober) -> None:
    with connected(probe) as sock:
        sock.sendall(REQUEST_HEAD + b"X-Big: " + b"a" * 200_000 + b"\r\n\r\n")
        reply = read_until_closed(sock, time.monotonic() + READ_TIMEOUT_S + MARGIN_S)
    assert reply.startswith(b"HTTP/1.1 431"), reply[:200]
    record(probe, "200 KB of headers", True, "")


def test_hundreds_of_slow_connections_are_all_dropped(probe: Prober) -> None:
    count = 300
    with ExitStack() as stack:
        socks = [stack.enter_context(connected(probe)) for _ in range(count)]
        for index, sock in enumerate(socks):
            if index % 2:
                sock.sendall(REQUEST_HEAD)
        # While they hang, everyone else is served and /health answers (check_unharmed).
        probe.check_unharmed("300 slow connections")
        deadline = time.monotonic() + READ_TIMEOUT_S + MARGIN_S + 5
        for sock in socks:
            read_until_closed(sock, deadline)
    TALLY.add("300 slow connections", REFUSED)
