"""The HTTP listening socket: accepted connections must have Nagle's algorithm off.

Regression: a socket made with proto 0 made asyncio skip TCP_NODELAY on accepted
connections, so on a reused keep-alive connection every SSE chunk after the response
headers waited for the client's delayed ACK (~40 ms before the first token).
"""

from __future__ import annotations

import asyncio
import socket

from sentiric_inference.app import _bind


async def test_accepted_connections_have_nodelay() -> None:
    listener = _bind("127.0.0.1", 0)
    port = listener.getsockname()[1]
    seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    class Probe(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            sock = transport.get_extra_info("socket")
            seen.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            transport.close()

    server = await asyncio.get_running_loop().create_server(Probe, sock=listener)
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            assert await asyncio.wait_for(seen, timeout=5) != 0
        finally:
            writer.close()
    finally:
        server.close()
        await server.wait_closed()


def test_bind_reports_address_in_use_clearly() -> None:
    first = _bind("127.0.0.1", 0)
    try:
        port = first.getsockname()[1]
        try:
            _bind("127.0.0.1", port).close()
        except OSError as exc:
            assert f"127.0.0.1:{port}" in str(exc)
        else:
            raise AssertionError("a second bind to a listening port must fail")
    finally:
        first.close()
