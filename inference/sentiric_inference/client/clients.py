"""Typed LlamaService clients: AsyncLlamaClient (grpc.aio) and LlamaClient (blocking)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncGenerator, Generator, Sequence
from types import TracebackType
from typing import Any, Self

import grpc

from sentiric_inference.client.messages import TextDecoder, build_request, events_of
from sentiric_inference.client.pool import (
    AsyncEndpointPool,
    BalancingOptions,
    EndpointPool,
    balanced_service_config,
    endpoint_options,
)
from sentiric_inference.client.targets import parse_target
from sentiric_inference.client.tls import TLSOptions
from sentiric_inference.client.types import (
    Completion,
    Finish,
    GenerationOptions,
    StreamEvent,
    StreamProtocolError,
    TextChunk,
    Turn,
)
from sentiric_inference.grpc_api.gen import llama_pb2, llama_pb2_grpc

TRACE_ID_METADATA = "x-trace-id"
SESSION_ID_METADATA = "x-session-id"
AUTHORIZATION_METADATA = "authorization"
# Endpoints a session call tries before giving up, when each answers UNAVAILABLE at once.
MAX_ENDPOINT_TRIES = 3


def _auth_metadata(api_key: str | None) -> tuple[tuple[str, str], ...]:
    """The server's API key (server.auth) as gRPC metadata, like HTTP's Bearer header."""
    return ((AUTHORIZATION_METADATA, f"Bearer {api_key}"),) if api_key else ()


def _metadata(trace_id: str | None, session: str | None = None) -> tuple[tuple[str, str], ...]:
    out: tuple[tuple[str, str], ...] = ((TRACE_ID_METADATA, trace_id),) if trace_id else ()
    return (*out, (SESSION_ID_METADATA, session)) if session else out


def _balanced(target: str, options: Sequence[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """`options`, plus round_robin with health checks for a target of many endpoints.

    dns:/// targets (a headless Service) and ipv4:/ipv6: lists get gRPC's own round_robin,
    which spreads calls over every address and skips an endpoint whose grpc.health.v1 status
    is not SERVING. A bare host:port keeps gRPC's default (one connection), as before.
    """
    text = target.strip()
    many = text.startswith("dns:") or (text.startswith(("ipv4:", "ipv6:")) and "," in text)
    if not many or any(key in ("grpc.service_config", "grpc.lb_policy_name") for key, _ in options):
        return list(options)
    return [*options, ("grpc.service_config", balanced_service_config())]


def _retryable(error: grpc.RpcError) -> bool:
    # UNAVAILABLE before any response: the endpoint refused the connection, is gone, or is
    # not serving (loading, draining); the request never reached the engine.
    return isinstance(error, grpc.Call) and error.code() == grpc.StatusCode.UNAVAILABLE


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(deadline - time.monotonic(), 0.0)


class CompletionRecorder:
    """Assembles a Completion from stream events, timing from its construction."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.first_text: float | None = None
        self.parts: list[str] = []

    def add(self, event: StreamEvent) -> Completion | None:
        if isinstance(event, TextChunk):
            if self.first_text is None:
                self.first_text = time.perf_counter() - self.started
            self.parts.append(event.text)
            return None
        return Completion(
            text="".join(self.parts),
            finish=event,
            time_to_first_token=self.first_text,
            duration=time.perf_counter() - self.started,
        )


def _missing_finish() -> StreamProtocolError:
    return StreamProtocolError("GenerateStream ended without finish_details")


class AsyncLlamaClient:
    """asyncio client; use as `async with AsyncLlamaClient("host:16071") as client:`."""

    def __init__(
        self,
        target: str,
        *,
        tls: TLSOptions | None = None,
        options: Sequence[tuple[str, Any]] = (),
        api_key: str | None = None,
        balancing: BalancingOptions | None = None,
    ) -> None:
        """`target` is host:port, or dns:///name:port (e.g. a headless Service) or
        ipv4:a:port,b:port to spread calls over every endpoint (round_robin).
        `options` are gRPC channel arguments; `api_key` is sent with every call when the
        server requires keys (server.auth). `balancing` tunes how calls with a `session`
        find their endpoint (client/pool.py)."""
        self._auth = _auth_metadata(api_key)
        self._target = target
        self._tls = tls
        self._options = list(options)
        self._balancing = balancing or BalancingOptions()
        self._pool: AsyncEndpointPool | None = None
        self._channel = self._open(target, _balanced(target, options))
        self._stub = llama_pb2_grpc.LlamaServiceStub(self._channel)

    def _open(self, target: str, options: Sequence[tuple[str, Any]]) -> grpc.aio.Channel:
        if self._tls is None:
            return grpc.aio.insecure_channel(target, options=list(options))
        return grpc.aio.secure_channel(
            target, self._tls.credentials(), options=[*options, *self._tls.channel_options()]
        )

    def _sessions(self) -> AsyncEndpointPool:
        """The per-endpoint channels for session calls, opened on the first one."""
        if self._pool is None:
            parsed = parse_target(self._target)
            extra = endpoint_options(parsed, self._tls.server_name if self._tls else None)
            self._pool = AsyncEndpointPool(
                parsed, lambda t: self._open(t, [*self._options, *extra]), self._balancing
            )
        return self._pool

    async def endpoint_for(self, session: str) -> str | None:
        """The address the next call of `session` goes to (rendezvous hashing)."""
        return await self._sessions().peek(session)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
        await self._channel.close()

    async def stream(
        self,
        user_prompt: str,
        *,
        system_prompt: str = "",
        rag_context: str | None = None,
        history: Sequence[Turn] = (),
        options: GenerationOptions | None = None,
        trace_id: str | None = None,
        # Sent as the gRPC deadline, so the server stops generating too (not asyncio.timeout).
        timeout: float | None = None,  # noqa: ASYNC109
        session: str | None = None,
    ) -> AsyncGenerator[StreamEvent, None]:
        """TextChunk events as the answer streams, then one Finish.

        Leaving the loop early cancels the call, which frees the server's sequence.
        Raises grpc.aio.AioRpcError for a failed call. With a `session` (a conversation's
        id, sent as x-session-id), every call of that session goes to the same endpoint
        while it serves, so the server's prefix cache holds the conversation so far.
        """
        request = build_request(
            user_prompt,
            system_prompt=system_prompt,
            rag_context=rag_context,
            history=history,
            options=options,
        )
        # aclosing: leaving this generator early must cancel the call now, not at GC.
        async with contextlib.aclosing(
            self.stream_request(request, trace_id=trace_id, timeout=timeout, session=session)
        ) as events:
            async for event in events:
                yield event

    async def stream_request(
        self,
        request: llama_pb2.GenerateStreamRequest,
        *,
        trace_id: str | None = None,
        # Sent as the gRPC deadline, so the server stops generating too (not asyncio.timeout).
        timeout: float | None = None,  # noqa: ASYNC109
        session: str | None = None,
    ) -> AsyncGenerator[StreamEvent, None]:
        """Like `stream`, for a request message built by the caller."""
        metadata = (*self._auth, *_metadata(trace_id, session))
        decoder = TextDecoder()
        async with contextlib.aclosing(
            self._responses(request, metadata, timeout, session)
        ) as responses:
            async for response in responses:
                for event in events_of(response, decoder):
                    yield event
                    if isinstance(event, Finish):
                        return
        raise _missing_finish()

    async def _responses(
        self,
        request: llama_pb2.GenerateStreamRequest,
        metadata: tuple[tuple[str, str], ...],
        timeout: float | None,  # noqa: ASYNC109 - the gRPC deadline
        session: str | None,
    ) -> AsyncGenerator[llama_pb2.GenerateStreamResponse, None]:
        if session is None:
            call = self._stub.GenerateStream(request, metadata=metadata, timeout=timeout)
            try:
                async for response in call:
                    yield response
            finally:
                call.cancel()
            return
        pool = self._sessions()
        deadline = None if timeout is None else time.monotonic() + timeout
        tried: set[str] = set()
        last: grpc.RpcError | None = None
        while True:
            endpoint = await pool.acquire(session, frozenset(tried))
            if endpoint is None:
                assert last is not None  # only an exclusion can leave no endpoint
                raise last
            # A stub is two attribute lookups; making one per call keeps the pool stub-free.
            call = llama_pb2_grpc.LlamaServiceStub(endpoint.channel).GenerateStream(
                request, metadata=metadata, timeout=_remaining(deadline)
            )
            received = False
            try:
                async for response in call:
                    received = True
                    yield response
                return
            except grpc.RpcError as exc:
                tried.add(endpoint.address)
                if received or not _retryable(exc) or len(tried) >= MAX_ENDPOINT_TRIES:
                    raise
                pool.failed(endpoint)
                last = exc
            finally:
                call.cancel()
                await pool.release(endpoint)

    async def generate(
        self,
        user_prompt: str,
        *,
        system_prompt: str = "",
        rag_context: str | None = None,
        history: Sequence[Turn] = (),
        options: GenerationOptions | None = None,
        trace_id: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the gRPC deadline
        session: str | None = None,
    ) -> Completion:
        """The whole answer with client-side timing; `session` as for `stream`."""
        recorder = CompletionRecorder()
        async with contextlib.aclosing(
            self.stream(
                user_prompt,
                system_prompt=system_prompt,
                rag_context=rag_context,
                history=history,
                options=options,
                trace_id=trace_id,
                timeout=timeout,
                session=session,
            )
        ) as events:
            async for event in events:
                completion = recorder.add(event)
                if completion is not None:
                    return completion
        raise _missing_finish()


class LlamaClient:
    """Blocking client; use as `with LlamaClient("host:16071") as client:`."""

    def __init__(
        self,
        target: str,
        *,
        tls: TLSOptions | None = None,
        options: Sequence[tuple[str, Any]] = (),
        api_key: str | None = None,
        balancing: BalancingOptions | None = None,
    ) -> None:
        """`target`, `options`, `api_key` and `balancing` as for AsyncLlamaClient."""
        self._auth = _auth_metadata(api_key)
        self._target = target
        self._tls = tls
        self._options = list(options)
        self._balancing = balancing or BalancingOptions()
        self._pool: EndpointPool | None = None
        self._channel = self._open(target, _balanced(target, options))
        self._stub = llama_pb2_grpc.LlamaServiceStub(self._channel)

    def _open(self, target: str, options: Sequence[tuple[str, Any]]) -> grpc.Channel:
        if self._tls is None:
            return grpc.insecure_channel(target, options=list(options))
        return grpc.secure_channel(
            target, self._tls.credentials(), options=[*options, *self._tls.channel_options()]
        )

    def _sessions(self) -> EndpointPool:
        if self._pool is None:
            parsed = parse_target(self._target)
            extra = endpoint_options(parsed, self._tls.server_name if self._tls else None)
            self._pool = EndpointPool(
                parsed, lambda t: self._open(t, [*self._options, *extra]), self._balancing
            )
        return self._pool

    def endpoint_for(self, session: str) -> str | None:
        """The address the next call of `session` goes to (rendezvous hashing)."""
        return self._sessions().peek(session)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
        self._channel.close()

    def stream(
        self,
        user_prompt: str,
        *,
        system_prompt: str = "",
        rag_context: str | None = None,
        history: Sequence[Turn] = (),
        options: GenerationOptions | None = None,
        trace_id: str | None = None,
        timeout: float | None = None,
        session: str | None = None,
    ) -> Generator[StreamEvent, None, None]:
        """TextChunk events, then one Finish; closing the iterator early cancels the call.

        Raises grpc.RpcError for a failed call; `session` as for AsyncLlamaClient.stream.
        """
        request = build_request(
            user_prompt,
            system_prompt=system_prompt,
            rag_context=rag_context,
            history=history,
            options=options,
        )
        metadata = (*self._auth, *_metadata(trace_id, session))
        decoder = TextDecoder()
        with contextlib.closing(self._responses(request, metadata, timeout, session)) as responses:
            for response in responses:
                for event in events_of(response, decoder):
                    yield event
                    if isinstance(event, Finish):
                        return
        raise _missing_finish()

    def _responses(
        self,
        request: llama_pb2.GenerateStreamRequest,
        metadata: tuple[tuple[str, str], ...],
        timeout: float | None,
        session: str | None,
    ) -> Generator[llama_pb2.GenerateStreamResponse, None, None]:
        if session is None:
            call = self._stub.GenerateStream(request, metadata=metadata, timeout=timeout)
            try:
                yield from call
            finally:
                call.cancel()
            return
        pool = self._sessions()
        deadline = None if timeout is None else time.monotonic() + timeout
        tried: set[str] = set()
        last: grpc.RpcError | None = None
        while True:
            endpoint = pool.acquire(session, frozenset(tried))
            if endpoint is None:
                assert last is not None  # only an exclusion can leave no endpoint
                raise last
            # A stub is two attribute lookups; making one per call keeps the pool stub-free.
            call = llama_pb2_grpc.LlamaServiceStub(endpoint.channel).GenerateStream(
                request, metadata=metadata, timeout=_remaining(deadline)
            )
            received = False
            try:
                for response in call:
                    received = True
                    yield response
                return
            except grpc.RpcError as exc:
                tried.add(endpoint.address)
                if received or not _retryable(exc) or len(tried) >= MAX_ENDPOINT_TRIES:
                    raise
                pool.failed(endpoint)
                last = exc
            finally:
                call.cancel()
                pool.release(endpoint)

    def generate(
        self,
        user_prompt: str,
        *,
        system_prompt: str = "",
        rag_context: str | None = None,
        history: Sequence[Turn] = (),
        options: GenerationOptions | None = None,
        trace_id: str | None = None,
        timeout: float | None = None,
        session: str | None = None,
    ) -> Completion:
        """The whole answer with client-side timing; `session` as for `stream`."""
        recorder = CompletionRecorder()
        with contextlib.closing(
            self.stream(
                user_prompt,
                system_prompt=system_prompt,
                rag_context=rag_context,
                history=history,
                options=options,
                trace_id=trace_id,
                timeout=timeout,
                session=session,
            )
        ) as events:
            for event in events:
                completion = recorder.add(event)
                if completion is not None:
                    return completion
        raise _missing_finish()
