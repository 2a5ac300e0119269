"""Typed wrappers over llama-cpp-python's low-level ctypes API: backend, model, context, batch."""

from __future__ import annotations

import ctypes
import functools
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import llama_cpp as llc

from ..errors import EngineFailure
from .backends import Backends, load_backends
from .cpus import available_cpus

log = logging.getLogger(__name__)
_native_log = logging.getLogger("sentiric_inference.llama_cpp")

# ggml log levels: 1 debug, 2 info, 3 warn, 4 error, 5 continuation of the previous message.
# llama.cpp's info output is load-time chatter: debug detail for whoever runs this server.
_LEVELS = {1: logging.DEBUG, 2: logging.DEBUG, 3: logging.WARNING, 4: logging.ERROR}
_CONTINUATION = 5

_KV_TYPES = {"f16": llc.GGML_TYPE_F16, "q8_0": llc.GGML_TYPE_Q8_0, "q4_0": llc.GGML_TYPE_Q4_0}

_FLASH_ATTENTION = {
    "auto": llc.LLAMA_FLASH_ATTN_TYPE_AUTO,
    "on": llc.LLAMA_FLASH_ATTN_TYPE_ENABLED,
    "off": llc.LLAMA_FLASH_ATTN_TYPE_DISABLED,
}


class _LogForwarder:
    """Sends llama.cpp's log lines to `logging`, continuation lines at their message's level."""

    def __init__(self) -> None:
        self._last = logging.DEBUG

    def __call__(self, level: int, text: bytes | None, _user_data: Any) -> None:
        if level != _CONTINUATION:
            self._last = _LEVELS.get(level, logging.DEBUG)
            # With a unified KV cache llama.cpp compares the whole cache (contextSize *
            # parallel) with the training context; the engine checks the real per-sequence
            # limit itself (Engine.load), so this warning would only mislead.
            if text and b"n_ctx_seq" in text:
                self._last = logging.DEBUG
        if text and _native_log.isEnabledFor(self._last):
            line = text.decode(errors="replace").rstrip()
            if line:
                _native_log.log(self._last, "%s", line)


# The C side keeps only a raw pointer, so the ctypes callback object must live as long as the
# process does: a module constant is exactly that lifetime.
_LOG_CALLBACK = llc.llama_log_callback(_LogForwarder())


@functools.cache
def init_backend() -> Backends:
    """Route llama.cpp's log to `logging`, load the backends and initialise, once per process."""
    llc.llama_log_set(_LOG_CALLBACK, ctypes.c_void_p(0))
    # Before llama_backend_init, which would otherwise let ggml pick a variant itself (or find
    # none: it searches the executable's folder, not llama_cpp/lib).
    backends = load_backends()
    llc.llama_backend_init()
    return backends


def gpu_offload_supported() -> bool:
    """Whether this llama.cpp build can put layers on a GPU (CUDA, Metal, ...)."""
    init_backend()
    return bool(llc.llama_supports_gpu_offload())


def resolve_threads(threads: int) -> int:
    """0 means one thread per CPU this process may use (affinity, capped by a CPU limit)."""
    if threads > 0:
        return threads
    return available_cpus()


class Model:
    """A loaded GGUF model and its vocabulary; tokenizing is read-only and thread-safe."""

    def __init__(self, path: Path, *, gpu_layers: int) -> None:
        if not path.is_file():
            raise EngineFailure(f"model file not found: {path}")
        backends = init_backend()
        params = llc.llama_model_default_params()
        params.n_gpu_layers = gpu_layers
        # Off only where the CPU backend would repack weights for AMX (engine/backends.py).
        params.use_extra_bufts = backends.use_extra_bufts
        ptr = llc.llama_model_load_from_file(str(path).encode(), params)
        if not ptr:
            raise EngineFailure(
                f"llama.cpp could not load {path}: not a valid GGUF file or an unsupported "
                "architecture (see the llama_cpp log for details)"
            )
        self.ptr = ptr
        self.path = path
        self.vocab = llc.llama_model_get_vocab(ptr)
        self.n_vocab: int = llc.llama_vocab_n_tokens(self.vocab)
        self.n_ctx_train: int = llc.llama_model_n_ctx_train(ptr)
        self._piece_buf = ctypes.create_string_buffer(256)
        self._pieces: dict[int, bytes] = {}

    def tokenize(self, text: str, *, add_special: bool, parse_special: bool) -> list[int]:
        data = text.encode()
        capacity = len(data) + 8
        while True:
            buf = (llc.llama_token * capacity)()
            n = llc.llama_tokenize(
                self.vocab, data, len(data), buf, capacity, add_special, parse_special
            )
            if n >= 0:
                return list(buf[:n])
            if n == -(2**31):
                raise EngineFailure("tokenization overflowed int32")
            capacity = -n

    def detokenize(self, tokens: Sequence[int]) -> bytes:
        """The text of `tokens` (ids checked by the caller), special tokens written out, as
        llama-server's /detokenize does; thread-safe (nothing shared is written)."""
        array = (llc.llama_token * len(tokens))(*tokens)
        capacity = 16 * len(tokens) + 16
        while True:
            buf = ctypes.create_string_buffer(capacity)
            n = llc.llama_detokenize(self.vocab, array, len(tokens), buf, capacity, False, True)
            if n >= 0:
                return buf.raw[:n]
            capacity = -n

    def token_bytes(self, token: int) -> bytes:
        """One token's bytes, special tokens written out; thread-safe, unlike `piece`."""
        return self._render(token, special=True, buf=ctypes.create_string_buffer(256))

    def piece(self, token: int) -> bytes:
        """Output bytes of a generated token; special tokens render as nothing.

        Only the scheduler thread calls this (the cache and buffer are not locked).
        """
        cached = self._pieces.get(token)
        if cached is None:
            cached = self._render(token, special=False, buf=self._piece_buf)
            self._pieces[token] = cached
        return cached

    def output_bytes(self, token: int) -> bytes:
        """What `piece` returns, without its cache: thread-safe."""
        return self._render(token, special=False, buf=ctypes.create_string_buffer(256))

    def token_text(self, token: int) -> str:
        """Text of a token as the chat template writes it (special tokens included)."""
        if token < 0:
            return ""
        buf = ctypes.create_string_buffer(256)
        return self._render(token, special=True, buf=buf).decode(errors="replace")

    def _render(self, token: int, *, special: bool, buf: ctypes.Array[ctypes.c_char]) -> bytes:
        n = llc.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, special)
        if n < 0:
            big = ctypes.create_string_buffer(-n)
            n = llc.llama_token_to_piece(self.vocab, token, big, len(big), 0, special)
            return big.raw[:n]
        return buf.raw[:n]

    def is_eog(self, token: int) -> bool:
        return bool(llc.llama_vocab_is_eog(self.vocab, token))

    def bos(self) -> int:
        return int(llc.llama_vocab_bos(self.vocab))

    def eos(self) -> int:
        return int(llc.llama_vocab_eos(self.vocab))

    def meta(self, key: str) -> str | None:
        size = 1024
        while True:
            buf = ctypes.create_string_buffer(size)
            n = llc.llama_model_meta_val_str(self.ptr, key.encode(), buf, size)
            if n < 0:
                return None
            if n < size:
                return buf.value.decode(errors="replace")
            size = n + 1

    def metadata(self, *, max_len: int = 512) -> dict[str, str]:
        """GGUF key/values as strings; the tokenizer's arrays are left out (huge, not text)."""
        out: dict[str, str] = {}
        buf = ctypes.create_string_buffer(max_len + 1)
        for i in range(llc.llama_model_meta_count(self.ptr)):
            if llc.llama_model_meta_key_by_index(self.ptr, i, buf, len(buf)) < 0:
                continue
            key = buf.value.decode(errors="replace")
            if key.startswith("tokenizer.ggml.") or key == "tokenizer.chat_template":
                continue
            if llc.llama_model_meta_val_str_by_index(self.ptr, i, buf, len(buf)) < 0:
                continue
            out[key] = buf.value.decode(errors="replace")
        return out

    def close(self) -> None:
        if self.ptr:
            llc.llama_model_free(self.ptr)
            self.ptr = None


class Context:
    """One llama_context: n_seq sequences over one KV cache of n_ctx cells.

    `unified` (the engine's layout) pools the cells of every sequence; False gives each
    sequence a stream of n_ctx / n_seq cells of its own (bench/kv_layout.py compares them).
    """

    def __init__(
        self,
        model: Model,
        *,
        n_ctx: int,
        n_seq: int,
        n_batch: int,
        threads: int,
        flash_attention: str,
        kv_cache_type: str = "f16",
        unified: bool = True,
        pooling: int | None = None,
    ) -> None:
        params = llc.llama_context_default_params()
        params.n_ctx = n_ctx
        params.n_batch = n_batch
        # The physical micro-batch bounds the compute buffers; 512 is llama.cpp's own default.
        params.n_ubatch = min(n_batch, 512)
        if pooling is not None:
            # An embedding context (engine/embedding.py): pooled vectors per sequence, and a
            # sequence must not be split across micro-batches, so the micro-batch is the batch.
            params.embeddings = True
            params.pooling_type = pooling
            params.n_ubatch = n_batch
        params.n_seq_max = n_seq
        params.n_threads = threads
        params.n_threads_batch = threads
        params.flash_attn_type = _FLASH_ATTENTION[flash_attention]
        params.type_k = params.type_v = _KV_TYPES[kv_cache_type]
        if kv_cache_type != "f16" and flash_attention == "auto":
            # llama.cpp quantizes the V cache only with flash attention; "auto" might not pick it.
            params.flash_attn_type = llc.LLAMA_FLASH_ATTN_TYPE_ENABLED
        # One pool of cells for all sequences: a prefix copied with seq_cp shares its cells,
        # and any sequence may use any free cell.
        params.kv_unified = unified
        params.no_perf = True
        ptr = llc.llama_init_from_model(model.ptr, params)
        if not ptr:
            raise EngineFailure(
                f"llama.cpp could not create a context of {n_ctx} tokens for {n_seq} sequences "
                "(out of memory, or settings the model does not support)"
            )
        self.ptr = ptr
        self.unified = unified
        self.n_seq = n_seq
        self.memory = llc.llama_get_memory(ptr)
        self.n_ctx: int = llc.llama_n_ctx(ptr)
        self.n_batch: int = llc.llama_n_batch(ptr)

    def decode(self, batch: Batch) -> int:
        return int(llc.llama_decode(self.ptr, batch.prepared()))

    def sample(self, chain: Any, index: int) -> int:
        return int(llc.llama_sampler_sample(chain, self.ptr, index))

    def ready_logits(self, index: int) -> None:
        """Wait for the last decode's logits and put them in batch order (see row_sampling)."""
        if not llc.llama_get_logits_ith(self.ptr, index):
            raise EngineFailure(f"llama.cpp has no logits for output row {index}")

    def embedding(self, seq: int, size: int) -> list[float]:
        """The pooled embedding of `seq` after the last decode (an embedding context only)."""
        ptr = llc.llama_get_embeddings_seq(self.ptr, seq)
        if not ptr:
            raise EngineFailure(f"llama.cpp has no pooled embedding for sequence {seq}")
        return list(ptr[:size])

    def clear(self) -> None:
        """Forget every sequence's KV cells."""
        llc.llama_memory_clear(self.memory, True)

    def seq_rm(self, seq: int, p0: int, p1: int) -> bool:
        return bool(llc.llama_memory_seq_rm(self.memory, seq, p0, p1))

    def seq_cp(self, src: int, dst: int, p0: int, p1: int) -> None:
        llc.llama_memory_seq_cp(self.memory, src, dst, p0, p1)

    def close(self) -> None:
        if self.ptr:
            llc.llama_free(self.ptr)
            self.ptr = None


class Batch:
    """A llama_batch allocated once; each step refills it in place (one sequence per token)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._raw = llc.llama_batch_init(capacity, 0, 1)
        # Cache the array pointers: reading a struct field builds a new ctypes object each time.
        self._token = self._raw.token
        self._pos = self._raw.pos
        self._logits = self._raw.logits
        self._seq = [self._raw.seq_id[i] for i in range(capacity)]
        n_seq_id = self._raw.n_seq_id
        for i in range(capacity):
            n_seq_id[i] = 1
        self.n = 0

    def clear(self) -> None:
        self.n = 0

    def add(self, token: int, pos: int, seq: int, logits: bool) -> int:
        """Append one token; return its index (the logits row when `logits` is set)."""
        i = self.n
        self._token[i] = token
        self._pos[i] = pos
        self._seq[i][0] = seq
        self._logits[i] = 1 if logits else 0
        self.n = i + 1
        return i

    def add_span(self, tokens: Sequence[int], pos: int, seq: int, *, logits_last: bool) -> int:
        """Append consecutive tokens of one sequence; return the index of the last one."""
        token, position, seq_rows, logits = self._token, self._pos, self._seq, self._logits
        i = self.n
        for offset, tok in enumerate(tokens):
            token[i] = tok
            position[i] = pos + offset
            seq_rows[i][0] = seq
            logits[i] = 0
            i += 1
        if logits_last and i > self.n:
            logits[i - 1] = 1
        self.n = i
        return i - 1

    def prepared(self) -> Any:
        self._raw.n_tokens = self.n
        return self._raw

    def close(self) -> None:
        if self.capacity:
            llc.llama_batch_free(self._raw)
            self.capacity = 0
