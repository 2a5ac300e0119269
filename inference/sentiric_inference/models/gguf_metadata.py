"""A GGUF file's key/value header, read in pure Python: the model's shape without llama.cpp.

`sentiric-llm download` reports the shape (layers, KV heads, head sizes, vocabulary...) to the
operator, which sizes the pod from it (engine/sizing.py). Loading the model with llama.cpp
would map, and on some CPUs repack, gigabytes of weights in an init container with a 1 GiB
limit; the header is a few megabytes at the start of the file, so reading it here costs
about a second even for Qwen's 151,936-token vocabulary. Format (little-endian, v2 and v3):

    "GGUF" u32 version, u64 tensor count, u64 key/value count,
    then per key: string key, u32 type, value   (string = u64 length + UTF-8 bytes;
    array = u32 element type, u64 count, elements)
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from sentiric_inference.engine.sizing import ModelShape

MAGIC = b"GGUF"
# Version 1 used 32-bit counts and is long gone from the Hub; llama.cpp reads only 2 and 3.
SUPPORTED_VERSIONS = (2, 3)
# Scalar value types: GGUF type id -> struct format.
_SCALARS = {
    0: "B",
    1: "b",
    2: "H",
    3: "h",
    4: "I",
    5: "i",
    6: "f",
    7: "?",
    10: "Q",
    11: "q",
    12: "d",
}
_STRING = 8
_ARRAY = 9
# The header of a real model is megabytes (the vocabulary); a "string" longer than this
# means a corrupt or non-GGUF file, and reading on would only allocate garbage.
_MAX_STRING = 64 * 2**20
_MAX_KEYS = 1 << 20
TOKENS_KEY = "tokenizer.ggml.tokens"


class GgufError(ValueError):
    """The file is not a GGUF this reader understands (the message says why)."""


@dataclass(frozen=True, slots=True)
class GgufMetadata:
    """Scalar and string values as llama.cpp's metadata API prints them; arrays by length."""

    version: int
    values: dict[str, str]
    array_lengths: dict[str, int]

    @property
    def n_vocab(self) -> int:
        """Tokens in the vocabulary (what llama_vocab_n_tokens reports)."""
        if TOKENS_KEY not in self.array_lengths:
            raise GgufError(f"GGUF metadata has no {TOKENS_KEY}")
        return self.array_lengths[TOKENS_KEY]


class _Reader:
    def __init__(self, f: BinaryIO) -> None:
        self._f = f

    def take(self, n: int) -> bytes:
        data = self._f.read(n)
        if len(data) != n:
            raise GgufError("the file ends inside its metadata (truncated?)")
        return data

    def scalar(self, fmt: str) -> int | float | bool:
        value: int | float | bool = struct.unpack("<" + fmt, self.take(struct.calcsize(fmt)))[0]
        return value

    def u32(self) -> int:
        return int(self.scalar("I"))

    def u64(self) -> int:
        return int(self.scalar("Q"))

    def string(self) -> str:
        n = self.u64()
        if n > _MAX_STRING:
            raise GgufError(f"a metadata string claims {n} bytes: not a GGUF file")
        return self.take(n).decode("utf-8", errors="replace")

    def skip_string(self) -> None:
        n = self.u64()
        if n > _MAX_STRING:
            raise GgufError(f"a metadata string claims {n} bytes: not a GGUF file")
        self._f.seek(n, 1)

    def value(self, kind: int) -> str:
        if kind == _STRING:
            return self.string()
        fmt = _SCALARS.get(kind)
        if fmt is None:
            raise GgufError(f"unknown GGUF value type {kind}")
        value = self.scalar(fmt)
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    def skip_array(self, kind: int, count: int) -> None:
        if kind == _STRING:
            for _ in range(count):
                self.skip_string()
        elif kind == _ARRAY:
            for _ in range(count):
                inner = self.u32()
                self.skip_array(inner, self.u64())
        else:
            fmt = _SCALARS.get(kind)
            if fmt is None:
                raise GgufError(f"unknown GGUF array element type {kind}")
            self._f.seek(struct.calcsize(fmt) * count, 1)


def read_metadata(path: Path) -> GgufMetadata:
    """The key/value header of the GGUF at `path`; GgufError when it is not one."""
    with path.open("rb") as f:
        r = _Reader(f)
        if r.take(4) != MAGIC:
            raise GgufError(f"{path.name} is not a GGUF file (no GGUF magic)")
        version = r.u32()
        if version not in SUPPORTED_VERSIONS:
            raise GgufError(f"{path.name}: unsupported GGUF version {version}")
        r.u64()  # tensor count: the tensors themselves are not needed
        n_keys = r.u64()
        if n_keys > _MAX_KEYS:
            raise GgufError(f"{path.name} claims {n_keys} metadata keys: not a GGUF file")
        values: dict[str, str] = {}
        lengths: dict[str, int] = {}
        for _ in range(n_keys):
            key = r.string()
            kind = r.u32()
            if kind == _ARRAY:
                inner, count = r.u32(), r.u64()
                lengths[key] = count
                r.skip_array(inner, count)
            else:
                values[key] = r.value(kind)
    return GgufMetadata(version=version, values=values, array_lengths=lengths)


def read_model_shape(path: Path) -> ModelShape:
    """The shape auto sizing needs, as the engine reads it from llama.cpp at start."""
    meta = read_metadata(path)
    try:
        return ModelShape.from_metadata(
            meta.values, n_vocab=meta.n_vocab, weights_bytes=path.stat().st_size
        )
    except ValueError as exc:
        raise GgufError(f"{path.name}: {exc}") from exc
