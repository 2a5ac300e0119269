"""LlamaService.GenerateStream: a thin adapter from gRPC onto the serving layer."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Final

import grpc

from sentiric_inference.errors import SentiricError
from sentiric_inference.grpc_api.auth import current_caller
from sentiric_inference.grpc_api.gen import llama_pb2, llama_pb2_grpc
from sentiric_inference.grpc_api.protocol import (
    FIELD_NAMES,
    UndecodableRequest,
    decoded,
    to_chat_input,
    to_request_params,
)
from sentiric_inference.grpc_api.statuses import status_for
from sentiric_inference.logging_setup import request_context
from sentiric_inference.serving.types import Finished, FinishReason

if TYPE_CHECKING:
    from sentiric_inference.metrics import Metrics
    from sentiric_inference.serving.service import Serving

logger = logging.getLogger(__name__)

API: Final = "grpc"
TRACE_ID_METADATA: Final = "x-trace-id"
SESSION_ID_METADATA: Final = "x-session-id"
# Longer client-supplied ids are cut so a hostile header cannot bloat every log line.
_MAX_TRACE_ID = 128

Response = llama_pb2.GenerateStreamResponse


def trace_id_of(
    context: grpc.aio.ServicerContext[Any, Any], key_name: str = TRACE_ID_METADATA
) -> str | None:
    """The caller's x-trace-id (or another id's) metadata value, if any."""
    for key, value in context.invocation_metadata() or ():
        if key == key_name:
            text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
            return text[:_MAX_TRACE_ID] or None
    return None


class LlamaServicer(llama_pb2_grpc.LlamaServiceServicer):
    """Streams a generation's text as UTF-8 bytes, then exactly one FinishDetails."""

    def __init__(self, serving: Serving, metrics: Metrics) -> None:
        self._serving = serving
        self._metrics = metrics

    # The method name is fixed by llama.proto.
    async def GenerateStream(
        self,
        request: llama_pb2.GenerateStreamRequest | UndecodableRequest,
        context: grpc.aio.ServicerContext[
            llama_pb2.GenerateStreamRequest, llama_pb2.GenerateStreamResponse
        ],
    ) -> AsyncIterator[llama_pb2.GenerateStreamResponse]:
        request_id = f"grpc-{uuid.uuid4().hex[:20]}"
        trace_id = trace_id_of(context)
        # Logged only: which replica a session lands on is the client's choice (client/pool.py).
        session_id = trace_id_of(context, SESSION_ID_METADATA)
        with request_context(request_id=request_id, trace_id=trace_id, session_id=session_id):
            started = time.monotonic()
            try:
                message = decoded(request)
                generation = await self._serving.start_chat(
                    to_chat_input(message),
                    to_request_params(message),
                    api=API,
                    request_id=request_id,
                    caller=current_caller(),
                )
            except SentiricError as exc:
                await self._refuse(context, exc)
                return
            logger.info("GenerateStream started", extra={"api": API})
            finished: Finished | None = None
            completion_tokens = 0
            try:
                try:
                    async for event in generation:
                        if isinstance(event, Finished):
                            finished = event
                            break
                        completion_tokens = event.completion_tokens
                        if event.text:
                            yield Response(token=event.text.encode("utf-8"))
                except Exception:
                    # The status line is gone once tokens were sent: report inside the stream.
                    logger.exception("GenerateStream failed while streaming")
                if finished is None:
                    finished = Finished(
                        FinishReason.ERROR, generation.prompt_tokens, completion_tokens
                    )
                yield Response(finish_details=_finish_details(finished))
            finally:
                # No-op after a Finished; otherwise (client cancel, deadline, failed write)
                # it frees the sequence at the engine's next step.
                generation.cancel()
                logger.info(
                    "GenerateStream finished",
                    extra={
                        "finish_reason": finished.reason.value if finished else "cancelled",
                        "prompt_tokens": generation.prompt_tokens,
                        "completion_tokens": (
                            finished.completion_tokens if finished else completion_tokens
                        ),
                        "duration_s": round(time.monotonic() - started, 4),
                    },
                )

    async def _refuse(
        self,
        context: grpc.aio.ServicerContext[
            llama_pb2.GenerateStreamRequest, llama_pb2.GenerateStreamResponse
        ],
        error: SentiricError,
    ) -> None:
        """The one error boundary of a call refused before streaming: respell the error
        with llama.proto's names, count it, end the call with its status."""
        error = error.renamed(FIELD_NAMES)
        status = status_for(error)
        self._metrics.requests_total.labels(api=API, outcome=status.outcome).inc()
        logger.info(
            "GenerateStream refused: %s",
            status.details,
            extra={"grpc_code": status.code.name, "outcome": status.outcome},
        )
        if status.trailing_metadata:
            context.set_trailing_metadata(status.trailing_metadata)
        await context.abort(status.code, status.details)


def _finish_details(event: Finished) -> llama_pb2.FinishDetails:
    return llama_pb2.FinishDetails(
        finish_reason=event.reason.value,
        prompt_tokens=event.prompt_tokens,
        completion_tokens=event.completion_tokens,
    )
