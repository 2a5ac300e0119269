"""Body limits (http/limiting.py) and header deadlines (http/connections.py), over a socket.

A small app served by uvicorn in this process, with the same protocol class and middleware
as `serve`; no model needed, so the bounds get millisecond feedback.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from fastapi import FastAPI, Request
from sentiric_inference.http.connections import guarded_protocol
from sentiric_inference.http.limiting import BodyLimitMiddleware

from tests.support.server import free_port

TIMEOUT_S = 0.5
MAX_BODY = 1000


def make_app() -> FastAPI:
    app = FastAPI()

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    app.add_middleware(BodyLimitMiddleware, max_body_bytes=MAX_BODY, read_timeout=TIMEOUT_S)
    return app


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    chosen = free_port()
    config = uvicorn.Config(
        make_app(),
        host="127.0.0.1",
        port=chosen,
        http=guarded_protocol(header_timeout=TIMEOUT_S),
        lifespan="off",
        log_level="error",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield chosen
    server.should_exit = True
    thread.join(timeout=10)


def exchange(port: int, data: bytes, wait: float = TIMEOUT_S + 2) -> tuple[bytes, float]:
    """Send `data`, read until the server closes; (reply, seconds until closed)."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        started = time.monotonic()
        if data:
            sock.sendall(data)
        reply = b""
        # Closing with unread request bytes may end in a reset rather than a clean EOF.
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                reply += chunk
        return reply, time.monotonic() - started


HEAD = b"POST /echo HTTP/1.1\r\nHost: x\r\n"


def test_a_body_within_the_limit_is_served(port: int) -> None:
    reply, _ = exchange(port, HEAD + b"Content-Length: 3\r\nConnection: close\r\n\r\nabc")
    assert reply.startswith(b"HTTP/1.1 200") and reply.endswith(b'{"bytes":3}')


def test_a_declared_oversized_body_is_refused_unread(port: int) -> None:
    reply, took = exchange(port, HEAD + b"Content-Length: 5000\r\n\r\nabc")
    assert reply.startswith(b"HTTP/1.1 413") and b"request_too_large" in reply
    assert took < TIMEOUT_S


def test_an_oversized_chunked_body_is_cut_off(port: int) -> None:
    chunk = b"800\r\n" + b"a" * 2048 + b"\r\n"
    reply, _ = exchange(port, HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + chunk)
    assert reply.startswith(b"HTTP/1.1 413")


def test_a_body_shorter_than_its_length_gets_408(port: int) -> None:
    reply, took = exchange(port, HEAD + b"Content-Length: 100\r\n\r\nabc")
    assert reply.startswith(b"HTTP/1.1 408") and b"request_timeout" in reply
    assert TIMEOUT_S * 0.9 <= took < TIMEOUT_S + 1.5


@pytest.mark.parametrize("data", [b"", HEAD], ids=["idle", "partial headers"])
def test_incomplete_headers_are_dropped_at_the_deadline(port: int, data: bytes) -> None:
    reply, took = exchange(port, data)
    assert reply == b""
    assert TIMEOUT_S * 0.9 <= took < TIMEOUT_S + 1.5


def test_oversized_headers_get_431(port: int) -> None:
    reply, _ = exchange(port, HEAD + b"X-Big: " + b"a" * 100_000 + b"\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 431") and b"headers_too_large" in reply
