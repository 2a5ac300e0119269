"""Embeddings: a second, small llama.cpp context on the loaded model, with its own thread.

The generation scheduler owns the main context and its thread; embedding work never enters
either. This context has `embeddings` on and a pooling type (the model's own from its GGUF
metadata, mean for a decoder LM that names none), a unified KV cache of EMBED_TOKENS cells
and up to EMBED_SEQUENCES sequences. Its worker thread packs waiting inputs, whole, into one
llama_decode as separate sequences, reads each sequence's pooled vector, L2-normalises it
(as llama-server and Ollama do), clears the cache and takes the next inputs. Each decode
starts from an empty cache, so the same input always gives the same vector, alone or in a
batch. Inputs wait in a bounded queue: beyond it a request is refused with OverloadedError.
"""

from __future__ import annotations

import collections
import concurrent.futures
import logging
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import llama_cpp as llc

from ..errors import EngineFailure, OverloadedError
from .native import Batch, Context, Model

log = logging.getLogger(__name__)

# Tokens one decode of the embedding context takes, and so the longest input it embeds
# (its KV cache holds exactly this many cells): 512 is BERT-style embedders' own context.
EMBED_TOKENS = 512
# Inputs packed into one decode as separate sequences.
EMBED_SEQUENCES = 16

_POOLING = {
    "none": llc.LLAMA_POOLING_TYPE_NONE,
    "mean": llc.LLAMA_POOLING_TYPE_MEAN,
    "cls": llc.LLAMA_POOLING_TYPE_CLS,
    "last": llc.LLAMA_POOLING_TYPE_LAST,
    "rank": llc.LLAMA_POOLING_TYPE_RANK,
}
_POOLING_NAMES = {value: name for name, value in _POOLING.items()}


@dataclass(frozen=True, slots=True)
class EmbeddingInfo:
    """What /health and the model card report about the embedding context."""

    dimensions: int
    pooling: str
    max_input_tokens: int
    sequences: int


def pooling_for(model: Model) -> int:
    """The model's pooling type from `<arch>.pooling_type`; mean when it names none.

    A decoder LM has no pooling of its own (llama.cpp's NONE gives per-token vectors);
    mean pooling over its last hidden states is what Ollama and llama-server fall back to.
    """
    arch = model.meta("general.architecture") or ""
    value = model.meta(f"{arch}.pooling_type")
    try:
        pooling = int(value) if value is not None else llc.LLAMA_POOLING_TYPE_NONE
    except ValueError:
        pooling = llc.LLAMA_POOLING_TYPE_NONE
    if pooling in (llc.LLAMA_POOLING_TYPE_NONE, llc.LLAMA_POOLING_TYPE_UNSPECIFIED):
        return int(llc.LLAMA_POOLING_TYPE_MEAN)
    return pooling


def normalized(vector: list[float]) -> list[float]:
    """`vector` scaled to unit L2 length (a zero vector stays zero)."""
    norm = math.sqrt(math.fsum(x * x for x in vector))
    return vector if norm == 0.0 else [x / norm for x in vector]


class _Job:
    """One request's inputs; its future gets one vector per input, in order."""

    def __init__(self, inputs: Sequence[Sequence[int]]) -> None:
        self.inputs = inputs
        self.vectors: list[list[float] | None] = [None] * len(inputs)
        self.left = len(inputs)
        self.future: concurrent.futures.Future[list[list[float]]] = concurrent.futures.Future()


class Embedder:
    """The embedding context and its worker thread (see the module docstring)."""

    def __init__(self, model: Model, *, threads: int, max_queue: int) -> None:
        pooling = pooling_for(model)
        if pooling == llc.LLAMA_POOLING_TYPE_RANK:
            raise EngineFailure("the model is a reranker (rank pooling): it embeds nothing")
        tokens = min(EMBED_TOKENS, model.n_ctx_train)
        self._ctx = Context(
            model,
            n_ctx=tokens,
            n_seq=EMBED_SEQUENCES,
            n_batch=tokens,
            threads=threads,
            flash_attention="auto",
            pooling=pooling,
        )
        self._batch = Batch(tokens)
        self.info = EmbeddingInfo(
            dimensions=int(llc.llama_model_n_embd(model.ptr)),
            pooling=_POOLING_NAMES.get(pooling, str(pooling)),
            max_input_tokens=tokens,
            sequences=EMBED_SEQUENCES,
        )
        self._max_queue = max_queue
        self._cond = threading.Condition()
        # (job, input index) in arrival order; a job's inputs are contiguous.
        self._pending: collections.deque[tuple[_Job, int]] = collections.deque()
        self._jobs = 0
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="sentiric-embedding", daemon=True)
        self._thread.start()

    def submit(
        self, inputs: Sequence[Sequence[int]]
    ) -> concurrent.futures.Future[list[list[float]]]:
        """Queue token lists (each non-empty, at most `info.max_input_tokens`, ids checked).

        Raises OverloadedError when `max_queue` requests already wait. Cancelling the
        returned future drops its inputs that have not been decoded yet.
        """
        job = _Job(inputs)
        with self._cond:
            if self._closing:
                raise EngineFailure("the embedding worker is stopped")
            if self._jobs >= self._max_queue:
                raise OverloadedError(
                    f"{self._jobs} embedding requests are already waiting; retry shortly.",
                    retry_after=1.0,
                )
            self._jobs += 1
            self._pending.extend((job, index) for index in range(len(inputs)))
            self._cond.notify()
        return job.future

    def close(self, timeout: float = 60.0) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("the embedding worker did not stop; its context is left allocated")
            return
        self._batch.close()
        self._ctx.close()

    # -- worker thread ------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closing:
                    self._cond.wait()
                if self._closing:
                    self._fail_pending(EngineFailure("the server is stopping"))
                    return
                packed = self._pack()
            if packed:
                self._decode(packed)

    def _pack(self) -> list[tuple[_Job, int]]:
        """Take whole inputs from the queue's front while they fit one decode (lock held)."""
        packed: list[tuple[_Job, int]] = []
        room = self._batch.capacity
        while self._pending and len(packed) < EMBED_SEQUENCES:
            job, index = self._pending[0]
            if job.future.done():  # cancelled by its caller, or failed
                self._pending.popleft()
                self._job_done(job, index)
                continue
            size = len(job.inputs[index])
            if size > room:
                break
            room -= size
            packed.append(self._pending.popleft())
        return packed

    def _decode(self, packed: list[tuple[_Job, int]]) -> None:
        batch, ctx = self._batch, self._ctx
        batch.clear()
        for seq, (job, index) in enumerate(packed):
            for pos, token in enumerate(job.inputs[index]):
                batch.add(token, pos, seq, True)
        try:
            rc = ctx.decode(batch)
            if rc != 0:
                raise EngineFailure(f"llama_decode failed with status {rc} (embeddings)")
            vectors = [ctx.embedding(seq, self.info.dimensions) for seq in range(len(packed))]
        except EngineFailure as exc:
            for job, _index in packed:
                _resolve(job.future, exc)
            vectors = []
        finally:
            ctx.clear()
        for (job, index), vector in zip(packed, vectors, strict=False):
            job.vectors[index] = normalized(vector)
        with self._cond:
            for job, index in packed:
                self._job_done(job, index)

    def _job_done(self, job: _Job, index: int) -> None:
        """One of `job`'s inputs is finished (or dropped); resolve it after the last (lock held)."""
        job.left -= 1
        if job.left:
            return
        self._jobs -= 1
        vectors = [vector for vector in job.vectors if vector is not None]
        if len(vectors) == len(job.vectors):
            _resolve(job.future, vectors)

    def _fail_pending(self, exc: EngineFailure) -> None:
        for job, _index in self._pending:
            _resolve(job.future, exc)
        self._pending.clear()


def _resolve(
    future: concurrent.futures.Future[list[list[float]]], result: list[list[float]] | Exception
) -> None:
    """Set a result or an exception unless the future is done (its caller may cancel it
    from another thread at any moment)."""
    try:
        if isinstance(result, Exception):
            future.set_exception(result)
        else:
            future.set_result(result)
    except concurrent.futures.InvalidStateError:
        pass
