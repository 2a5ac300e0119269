"""Request ids and access logs as plain ASGI middleware.

Plain ASGI rather than Starlette's BaseHTTPMiddleware: the latter wraps streaming bodies in
its own task and can hide a client disconnect from the SSE generator.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sentiric_inference.logging_setup import request_context

log = logging.getLogger("sentiric_inference.http.access")

REQUEST_ID_HEADER = "x-request-id"
# A client-supplied id is reused only if it is short and printable, since it goes to logs.
_VALID_ID = re.compile(r"^[A-Za-z0-9._:/+=-]{1,128}$")
# Probes hit these every few seconds; their access lines would drown everything else.
_QUIET_PATHS = frozenset({"/health", "/ready", "/metrics"})


class RequestIdMiddleware:
    """Take or make `x-request-id`, bind it to log lines, echo it, log one access line."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        supplied = None
        for name, value in scope.get("headers", ()):
            if name == REQUEST_ID_HEADER.encode():
                supplied = value.decode("latin-1")
                break
        request_id = supplied if supplied and _VALID_ID.match(supplied) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        with request_context(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                path = scope.get("path", "")
                if path not in _QUIET_PATHS or status >= 400:
                    log.info(
                        "%s %s %s %.1fms",
                        scope.get("method", ""),
                        path,
                        status or "-",
                        (time.perf_counter() - started) * 1000,
                        extra={"status": status, "path": path},
                    )
