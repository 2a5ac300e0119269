"""OpenAI's POST /v1/embeddings body and reply, as pydantic models (no web framework).

`input` is a string, a list of strings, one token-id list or a list of them, as OpenAI
takes it. Unknown fields are refused and types are strict, as for the other OpenAI bodies.
"""

from __future__ import annotations

import base64
import struct
from typing import Literal

from pydantic import BaseModel, ConfigDict


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    model: str
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = None
    user: str | None = None

    def inputs(self) -> tuple[list[str | list[int]], bool]:
        """The inputs as a list, and whether the client sent a single bare one."""
        value = self.input
        if isinstance(value, str):
            return [value], True
        if value and all(isinstance(item, int) for item in value):
            return [value], True  # type: ignore[list-item]  # one token-id list
        return list(value), False  # type: ignore[arg-type]


class EmbeddingData(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    # base64: the vector's float32 values, little-endian, as OpenAI encodes them.
    embedding: list[float] | str


class EmbeddingUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingData]
    model: str
    usage: EmbeddingUsage


def encoded(vector: list[float], encoding: Literal["float", "base64"]) -> list[float] | str:
    """A vector as the client asked for it."""
    if encoding == "float":
        return vector
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
