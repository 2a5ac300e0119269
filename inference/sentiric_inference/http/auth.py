"""API keys on HTTP: every route but the probes needs `Authorization: Bearer <key>`.

Plain ASGI, between the request-id middleware (so a refusal gets an id and an access line)
and the body reader (so a caller without a key cannot make the server read a 4 MiB body).
The caller found here is put in the request's state for the routes (`request.state.caller`)
and its key's name into the log context; the key itself is never logged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.types import ASGIApp, Receive, Scope, Send

from sentiric_inference.errors import UnauthenticatedError
from sentiric_inference.http.errors import error_response
from sentiric_inference.http.studio import PUBLIC_PATHS as STUDIO_PATHS
from sentiric_inference.logging_setup import api_key_var
from sentiric_inference.protocol.responses import ErrorBody
from sentiric_inference.serving.keys import ANONYMOUS

if TYPE_CHECKING:
    from sentiric_inference.serving.access import Access

# Kubernetes probes and Prometheus carry no key; they reveal no model output. Nor does the
# Studio's page, which a browser opens without a key: it asks for one for its API calls.
OPEN_PATHS = frozenset({"/health", "/ready", "/metrics", *STUDIO_PATHS})
API = "http"


class ApiKeyMiddleware:
    def __init__(self, app: ASGIApp, *, access: Access) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        if not self.access.enabled or scope.get("path", "") in OPEN_PATHS:
            state["caller"] = ANONYMOUS
            await self.app(scope, receive, send)
            return
        authorization = None
        has_body = False
        for name, value in scope.get("headers", ()):
            if name == b"authorization" and authorization is None:
                authorization = value.decode("latin-1")
            elif (name == b"content-length" and value not in (b"", b"0")) or (
                name == b"transfer-encoding"
            ):
                has_body = True
        try:
            caller = self.access.authenticate(authorization, api=API)
        except UnauthenticatedError as exc:
            headers = {"WWW-Authenticate": "Bearer"}
            if has_body:
                # The body is left unread, so the connection cannot carry another request.
                headers["Connection"] = "close"
            body = ErrorBody(
                message=exc.message,
                type="invalid_request_error",
                param=None,
                code="invalid_api_key",
            )
            await error_response(401, body, headers, path=scope.get("path", ""))(
                scope, receive, send
            )
            return
        state["caller"] = caller
        # Not reset: each request runs in its own task, and the access line written after
        # this returns (http/middleware.py) should name the key too.
        api_key_var.set(caller.name)
        await self.app(scope, receive, send)
