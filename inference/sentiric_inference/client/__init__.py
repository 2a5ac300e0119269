"""Python client for sentiric.llm.v1.LlamaService (async and blocking, optional mTLS,
balanced over many endpoints with session affinity)."""

from __future__ import annotations

from sentiric_inference.client.clients import AsyncLlamaClient, CompletionRecorder, LlamaClient
from sentiric_inference.client.messages import TextDecoder, build_request
from sentiric_inference.client.pool import BalancingOptions, NoEndpointError
from sentiric_inference.client.targets import TargetError, parse_target
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
    "BalancingOptions",
    "Completion",
    "CompletionRecorder",
    "Finish",
    "GenerationOptions",
    "LlamaClient",
    "NoEndpointError",
    "StreamEvent",
    "StreamProtocolError",
    "TLSOptions",
    "TargetError",
    "TextChunk",
    "TextDecoder",
    "Turn",
    "build_request",
    "parse_target",
]
