"""Python client for sentiric.llm.v1.LlamaService (async and blocking, optional mTLS)."""

from __future__ import annotations

from sentiric_inference.client.clients import AsyncLlamaClient, CompletionRecorder, LlamaClient
from sentiric_inference.client.messages import TextDecoder, build_request
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

__all__ = [
    "AsyncLlamaClient",
    "Completion",
    "CompletionRecorder",
    "Finish",
    "GenerationOptions",
    "LlamaClient",
    "StreamEvent",
    "StreamProtocolError",
    "TLSOptions",
    "TextChunk",
    "TextDecoder",
    "Turn",
    "build_request",
]
