"""Build GenerateStreamRequest messages and decode streamed bytes into text."""

from __future__ import annotations

import codecs
from collections.abc import Sequence

from google.protobuf.struct_pb2 import Struct

from sentiric_inference.client.types import Finish, GenerationOptions, StreamEvent, TextChunk, Turn
from sentiric_inference.grpc_api.gen import llama_pb2


def build_request(
    user_prompt: str,
    *,
    system_prompt: str = "",
    rag_context: str | None = None,
    history: Sequence[Turn] = (),
    options: GenerationOptions | None = None,
) -> llama_pb2.GenerateStreamRequest:
    """A request carrying exactly the options that were set (unset fields stay absent)."""
    request = llama_pb2.GenerateStreamRequest(
        user_prompt=user_prompt,
        system_prompt=system_prompt,
        history=[llama_pb2.ConversationTurn(role=t.role, content=t.content) for t in history],
    )
    if rag_context is not None:
        request.rag_context = rag_context
    if options is None:
        return request
    params = request.params
    if options.max_new_tokens is not None:
        params.max_new_tokens = options.max_new_tokens
    if options.temperature is not None:
        params.temperature = options.temperature
    if options.top_k is not None:
        params.top_k = options.top_k
    if options.top_p is not None:
        params.top_p = options.top_p
    if options.repetition_penalty is not None:
        params.repetition_penalty = options.repetition_penalty
    if options.seed is not None:
        params.seed = options.seed
    params.stop_sequences.extend(options.stop_sequences)
    if options.engine_params:
        extra = Struct()
        extra.update(dict(options.engine_params))
        params.engine_specific_params.CopyFrom(extra)
    # Mark params present even when every field was left unset.
    request.params.SetInParent()
    return request


class TextDecoder:
    """Incremental UTF-8: a character split across two `token` messages is emitted once whole.

    Invalid bytes become U+FFFD instead of failing the stream (servers other than
    sentiric-llm may send raw token bytes).
    """

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, data: bytes) -> str:
        return self._decoder.decode(data)

    def flush(self) -> str:
        """Whatever is held back at the end of the stream (U+FFFD for a cut character)."""
        return self._decoder.decode(b"", final=True)


def events_of(
    response: llama_pb2.GenerateStreamResponse, decoder: TextDecoder
) -> list[StreamEvent]:
    """Client events for one response message (empty while a character is incomplete)."""
    kind = response.WhichOneof("type")
    if kind == "token":
        text = decoder.feed(response.token)
        return [TextChunk(text)] if text else []
    if kind == "finish_details":
        events: list[StreamEvent] = []
        tail = decoder.flush()
        if tail:
            events.append(TextChunk(tail))
        details = response.finish_details
        events.append(
            Finish(details.finish_reason, details.prompt_tokens, details.completion_tokens)
        )
        return events
    return []
