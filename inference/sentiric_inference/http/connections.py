"""uvicorn's HTTP protocol, with the bounds it lacks against slow and bloated requests.

uvicorn times out only idle keep-alive connections: a client that connects and sends
nothing, or sends headers a byte at a time, held its connection forever (1,000 of them for
as long as they liked), and it reads headers of any size. Here each request's headers must
arrive within a deadline and fit a size; the body is bounded by http/limiting.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# Request line plus headers; real clients send well under 8 KiB.
MAX_HEADER_BYTES = 64 * 1024

_431 = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: application/json\r\nconnection: close\r\ncontent-length: "
)
_431_BODY = (
    b'{"error": {"message": "The request line and headers are larger than this server '
    b'accepts.", "type": "invalid_request_error", "param": null, '
    b'"code": "headers_too_large"}}'
)


class _GuardedProtocol(HttpToolsProtocol):
    header_timeout: float = 15.0
    max_header_bytes: int = MAX_HEADER_BYTES

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_deadline: asyncio.TimerHandle | None = None
        self._header_bytes = 0
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        super().data_received(data)
        if self._header_bytes > self.max_header_bytes and not self._refused:
            self._refuse_headers()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        # A keep-alive connection's next request gets its own deadline from its first byte.
        if self._header_deadline is None:
            self._arm()

    def on_url(self, url: bytes) -> None:
        self._header_bytes += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value) + 4
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._disarm()
        if self._header_bytes > self.max_header_bytes:
            self._refuse_headers()
            return
        super().on_headers_complete()

    def _arm(self) -> None:
        self._disarm()
        self._header_deadline = self.loop.call_later(self.header_timeout, self._headers_late)

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_late(self) -> None:
        self._header_deadline = None
        # Nothing to answer: the request never became one. Dropping the connection is what
        # nginx and Go's ReadHeaderTimeout do too.
        if not self.transport.is_closing():
            self.transport.close()

    def _refuse_headers(self) -> None:
        self._refused = True
        self._disarm()
        if not self.transport.is_closing():
            self.transport.write(_431 + str(len(_431_BODY)).encode() + b"\r\n\r\n" + _431_BODY)
            self.transport.close()


def guarded_protocol(*, header_timeout: float) -> type[HttpToolsProtocol]:
    """The protocol class to pass as uvicorn.Config(http=...)."""
    return type(
        "GuardedHttpToolsProtocol",
        (_GuardedProtocol,),
        {"header_timeout": header_timeout},
    )
