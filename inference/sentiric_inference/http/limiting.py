"""Read each request body whole, bounded in size and time, before any route sees it.

Without it a 30 MB prompt was read, parsed and tokenized (seconds of CPU, gigabytes of
RSS), and a body shorter than its Content-Length held its connection forever. A body
larger than server.limits.maxBodyBytes is refused with 413 (unread when Content-Length
says so up front), one that does not arrive within server.limits.readTimeoutSeconds with
408; both close the connection. Plain ASGI, like the request-id middleware, so streaming
responses and disconnect detection pass through untouched.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sentiric_inference.http.errors import count_refusal, error_response
from sentiric_inference.protocol.responses import ErrorBody

if TYPE_CHECKING:
    from sentiric_inference.metrics import Metrics


class BodyLimitMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        read_timeout: float,
        metrics: Metrics | None = None,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.read_timeout = read_timeout
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await self._refuse(scope, receive, send, 413, declared)
            return
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.read_timeout):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return  # the client left before its request was complete
                    body = message.get("body", b"")
                    size += len(body)
                    if size > self.max_body_bytes:
                        await self._refuse(scope, receive, send, 413, size)
                        return
                    chunks.append(body)
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            await self._refuse(scope, receive, send, 408, size)
            return
        await self.app(scope, _replay(b"".join(chunks), receive), send)

    async def _refuse(
        self, scope: Scope, receive: Receive, send: Send, status: int, size: int
    ) -> None:
        if status == 413:
            body = ErrorBody(
                message=f"The request body is {size} bytes or more; this server accepts at most "
                f"{self.max_body_bytes} (server.limits.maxBodyBytes).",
                type="invalid_request_error",
                code="request_too_large",
            )
        else:
            body = ErrorBody(
                message=f"The request body did not arrive within {self.read_timeout:g} s "
                f"(server.limits.readTimeoutSeconds); {size} bytes were received.",
                type="invalid_request_error",
                code="request_timeout",
            )
        # Refused before the error handlers (http/errors.py) could see it; counted alike.
        count_refusal(self.metrics, scope.get("path", ""), "invalid")
        # The rest of the body is not read, so the connection cannot carry another request.
        response = error_response(status, body, {"Connection": "close"}, path=scope.get("path", ""))
        await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that hands over the body read already, then listens for a disconnect."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
