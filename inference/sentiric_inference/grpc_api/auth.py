"""API keys on gRPC: LlamaService calls need metadata `authorization: Bearer <key>`.

Each LlamaService method handler is wrapped before it is registered, so both of grpc's
lookup paths (generic and registered handlers) reach the check, and a method added later is
covered by the same loop; health and reflection are registered unwrapped and stay open for
probes and tools. The caller is handed to the servicer through a context variable: every
call runs in its own task, so the value belongs to that call alone.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextvars import ContextVar
from typing import Any

import grpc

from sentiric_inference.errors import UnauthenticatedError
from sentiric_inference.logging_setup import api_key_var
from sentiric_inference.serving.access import Access
from sentiric_inference.serving.keys import ANONYMOUS, Caller

logger = logging.getLogger(__name__)

AUTHORIZATION_METADATA = "authorization"
API = "grpc"

_caller_var: ContextVar[Caller] = ContextVar("sentiric_grpc_caller", default=ANONYMOUS)


def current_caller() -> Caller:
    """The caller of the running LlamaService call (anonymous with API keys off)."""
    return _caller_var.get()


def _authorization(context: grpc.aio.ServicerContext[Any, Any]) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == AUTHORIZATION_METADATA:
            return value.decode("latin-1") if isinstance(value, bytes) else value
    return None


async def _admit(access: Access, context: grpc.aio.ServicerContext[Any, Any]) -> None:
    """Set the caller for this call, or end it with UNAUTHENTICATED (the key unlogged)."""
    try:
        caller = access.authenticate(_authorization(context), api=API)
    except UnauthenticatedError as exc:
        logger.info("gRPC call refused: %s", exc.message, extra={"grpc_code": "UNAUTHENTICATED"})
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, exc.message)
        raise AssertionError("abort returned") from None  # abort always raises
    _caller_var.set(caller)
    api_key_var.set(caller.name)


def _wrap_unary(inner: Callable[..., Any], access: Access) -> Callable[..., Any]:
    async def behavior(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await _admit(access, context)
        return await inner(request, context)

    return behavior


def _wrap_streaming(inner: Callable[..., Any], access: Access) -> Callable[..., Any]:
    async def behavior(
        request: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        await _admit(access, context)
        async for response in inner(request, context):
            yield response

    return behavior


def require_api_key(
    handlers: Mapping[str, grpc.RpcMethodHandler[Any, Any]], access: Access
) -> dict[str, grpc.RpcMethodHandler[Any, Any]]:
    """The same handlers, each checking the caller's key first (unchanged with keys off)."""
    if not access.enabled:
        return dict(handlers)
    wrapped: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
    for name, handler in handlers.items():
        # grpc's handlers are namedtuples holding one behaviour, under the RPC's kind.
        for kind, wrap in _KINDS:
            behaviour = getattr(handler, kind)
            if behaviour is not None:
                replaced = handler._replace(**{kind: wrap(behaviour, access)})  # type: ignore[attr-defined]
                wrapped[name] = replaced
                break
    return wrapped


_KINDS = (
    ("unary_unary", _wrap_unary),
    ("stream_unary", _wrap_unary),
    ("unary_stream", _wrap_streaming),
    ("stream_stream", _wrap_streaming),
)
