"""Typed LlamaService clients: AsyncLlamaClient (grpc.aio) and LlamaClient (blocking)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncGenerator, Generator, Sequence
from types import TracebackType
from typing import Any, Self

import grpc

from sentiric_inference.client.messages import TextDecoder, build_request, events_of
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
AUTHORIZATION_METADATA = "authorization"


def _auth_metadata(api_key: str | None) -> tuple[tuple[str, str], ...]:
    """The server's API key (server.auth) as gRPC metadata, like HTTP's Bearer header."""
    return ((AUTHORIZATION_METADATA, f"Bearer {api_key}"),) if api_key else ()


def _metadata(trace_id: str | None) -> tuple[tuple[str, str], ...]:
    return ((TRACE_ID_METADATA, trace_id),) if trace_id else ()


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
    ) -> None:
        """`options` are gRPC channel arguments, e.g. ("grpc.lb_policy_name", "round_robin")
        with a dns:/// target of the headless Service to spread calls over replicas.
        `api_key` is sent with every call when the server requires keys (server.auth)."""
        self._auth = _auth_metadata(api_key)
        if tls is None:
            self._channel = grpc.aio.insecure_channel(target, options=list(options))
        else:
            self._channel = grpc.aio.secure_channel(
                target, tls.credentials(), options=[*options, *tls.channel_options()]
            )
        self._stub = llama_pb2_grpc.LlamaServiceStub(self._channel)

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
    ) -> AsyncGenerator[StreamEvent, None]:
        """TextChunk events as the answer streams, then one Finish.

        Leaving the loop early cancels the call, which frees the server's sequence.
        Raises grpc.aio.AioRpcError for a failed call.
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
            self.stream_request(request, trace_id=trace_id, timeout=timeout)
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
    ) -> AsyncGenerator[StreamEvent, None]:
        """Like `stream`, for a request message built by the caller."""
        call = self._stub.GenerateStream(
            request, metadata=(*self._auth, *_metadata(trace_id)), timeout=timeout
        )
        decoder = TextDecoder()
        try:
            async for response in call:
                for event in events_of(response, decoder):
                    yield event
                    if isinstance(event, Finish):
                        return
            raise _missing_finish()
        finally:
            call.cancel()

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
    ) -> Completion:
        """The whole answer with client-side timing."""
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
    ) -> None:
        """`options` are gRPC channel arguments and `api_key` the server's key, as for
        AsyncLlamaClient."""
        self._auth = _auth_metadata(api_key)
        if tls is None:
            self._channel = grpc.insecure_channel(target, options=list(options))
        else:
            self._channel = grpc.secure_channel(
                target, tls.credentials(), options=[*options, *tls.channel_options()]
            )
        self._stub = llama_pb2_grpc.LlamaServiceStub(self._channel)

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
    ) -> Generator[StreamEvent, None, None]:
        """TextChunk events, then one Finish; closing the iterator early cancels the call.

        Raises grpc.RpcError for a failed call.
        """
        request = build_request(
            user_prompt,
            system_prompt=system_prompt,
            rag_context=rag_context,
            history=history,
            options=options,
        )
        call = self._stub.GenerateStream(
            request, metadata=(*self._auth, *_metadata(trace_id)), timeout=timeout
        )
        decoder = TextDecoder()
        try:
            for response in call:
                for event in events_of(response, decoder):
                    yield event
                    if isinstance(event, Finish):
                        return
            raise _missing_finish()
        finally:
            call.cancel()

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
    ) -> Completion:
        """The whole answer with client-side timing."""
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
            )
        ) as events:
            for event in events:
                completion = recorder.add(event)
                if completion is not None:
                    return completion
        raise _missing_finish()
