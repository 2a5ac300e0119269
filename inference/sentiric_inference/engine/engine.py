"""Engine: one model, one context, one scheduler thread; the API the serving layer calls."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

from ..config import EngineSettings
from ..errors import EngineFailure, InvalidRequestError, NotReadyError, PromptTooLongError
from ..metrics import Metrics
from .backends import Backends, gpu_free_memory, llama_cpp_python_version
from .cpus import available_cpus
from .draft_model import ModelDrafter, open_draft_model
from .embedding import Embedder, EmbeddingInfo
from .jobs import Job, Sink
from .memory import memory_budget
from .native import Context, Model, gpu_offload_supported, init_backend, resolve_threads
from .planning import default_batch_size
from .row_sampling import default_sampling_threads
from .sampling import Chain, build_chain, free_chain
from .scheduler import Scheduler
from .sizing import CONTEXT_MIN, Budget, ModelShape, SizingPlan, plan_for_settings
from .stream import GenerationStream
from .text import TextAssembler
from .types import GenerationEvent, GenerationRequest, ModelInfo
from .utf8_guard import table_for as utf8_table_for

__all__ = ["Engine", "EngineStats", "GenerationStream"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class EngineStats:
    queue_depth: int  # requests waiting for a free sequence
    sequences_active: int
    parallel: int
    kv_cells_used: int
    kv_cells_total: int


class Engine:
    """Continuous batching over llama.cpp: every active sequence advances in one llama_decode."""

    def __init__(
        self,
        model_path: Path,
        settings: EngineSettings,
        metrics: Metrics,
        *,
        model_name: str | None = None,
        min_context: int = CONTEXT_MIN,
        draft_model_path: Path | None = None,
    ) -> None:
        self._path = Path(model_path)
        # engine.draftModel's file: guesses come from it when draftTokens > 0.
        self._draft_path = draft_model_path
        # Smallest context an automatic plan may choose (the profile's maxTokens + a prompt).
        self._min_context = min_context
        self._plan_used: SizingPlan | None = None
        self._backends: Backends | None = None
        self._settings = settings
        self._metrics = metrics
        self._name = model_name or self._path.stem
        self._lock = threading.Lock()
        self._model: Model | None = None
        self._ctx: Context | None = None
        self._scheduler: Scheduler | None = None
        self._embedder: Embedder | None = None
        # Why embeddings are not served ("" while they are, or before load).
        self._embeddings_off = "" if settings.embeddings else "engine.embeddings is false"
        self._info: ModelInfo | None = None
        self._ready = False
        self._closed = False
        self._reason = f"loading model {self._path}"
        metrics.sequences_max.set(settings.parallel)
        metrics.model_ready.set(0)

    # -- lifecycle --------------------------------------------------------------------------

    def load(self) -> None:
        """Load the model and context and start the scheduler (blocking, seconds to minutes).

        Raises EngineFailure naming the file when it is missing or llama.cpp cannot load it.
        Longer than 80 lines on purpose: each native resource (model, draft model, plan,
        context, embedder, scheduler) is created in order inside the try blocks that free
        it again if a later one fails; split apart, that pairing is harder to check.
        """
        with self._lock:
            if self._closed or self._model is not None:
                raise EngineFailure("load() may be called once, before close()")
            self._reason = f"loading model {self._path}"
        s = self._settings
        self._backends = init_backend()
        self._report_backends(self._backends)
        gpu_offload = s.gpu_layers != 0 and gpu_offload_supported()
        batch_size = s.batch_size or default_batch_size(gpu_offload=gpu_offload)
        # Read before the weights are loaded, so a CPU budget still includes them.
        cpu_budget = memory_budget()
        draft: Model | None = None
        drafter: ModelDrafter | None = None
        try:
            model = Model(self._path, gpu_layers=s.gpu_layers)
            try:
                if self._draft_path is not None and s.draft_tokens:
                    # Before the plan, so its weights and KV cells are counted.
                    draft = open_draft_model(self._draft_path, model, gpu_layers=s.gpu_layers)
                plan = self._plan(
                    model, cpu_budget, batch_size=batch_size, gpu=gpu_offload, draft=draft
                )
                s = self._settings = s.model_copy(
                    update={"parallel": plan.parallel, "context_size": plan.context_size}
                )
                self._plan_used = plan
                # Built here, off the event loop, rather than on the first request.
                utf8_table_for(model)
                ctx = Context(
                    model,
                    n_ctx=s.context_size * s.parallel,
                    n_seq=s.parallel,
                    # One token per sequence must always fit, even with a small batchSize.
                    n_batch=max(batch_size, s.parallel),
                    threads=resolve_threads(s.threads),
                    flash_attention=s.flash_attention,
                    kv_cache_type=s.kv_cache_type,
                    unified=s.kv_layout == "unified",
                )
                if draft is not None:
                    try:
                        drafter = ModelDrafter.on(
                            draft,
                            n_ctx=ctx.n_ctx,
                            n_seq=s.parallel,
                            n_batch=ctx.n_batch,
                            threads=resolve_threads(s.threads),
                            flash_attention=s.flash_attention,
                        )
                    except BaseException:
                        ctx.close()
                        raise
            except BaseException:
                if draft is not None and drafter is None:
                    draft.close()
                model.close()
                raise
        except EngineFailure as exc:
            self._reason = f"model failed to load: {exc.message}"
            raise
        self._metrics.sequences_max.set(s.parallel)
        info = self._describe(model)
        if s.context_size > model.n_ctx_train:
            log.warning(
                "contextSize %d exceeds the %d tokens %s was trained on; output may degrade "
                "beyond that",
                s.context_size,
                model.n_ctx_train,
                self._path.name,
            )
        sampling_threads = s.sampling_threads or default_sampling_threads(
            gpu_offload=gpu_offload, cpus=available_cpus()
        )
        scheduler = Scheduler(
            model,
            ctx,
            s,
            self._metrics,
            on_crash=self._crashed,
            sampling_threads=sampling_threads,
            drafter=drafter,
        )
        embedder = self._start_embedder(model, s) if s.embeddings else None
        with self._lock:
            if self._closed:
                if embedder is not None:
                    embedder.close()
                ctx.close()
                model.close()
                raise EngineFailure("the engine was closed while the model was loading")
            self._model, self._ctx, self._scheduler, self._info = model, ctx, scheduler, info
            self._embedder = embedder
            scheduler.start()
            self._ready = True
            self._reason = ""
        self._metrics.model_ready.set(1)
        log.info(
            "model %s loaded: %d sequences x %d tokens of context, %d-token steps, sampling on "
            "%d thread(s)",
            self._path,
            s.parallel,
            s.context_size,
            ctx.n_batch,
            sampling_threads,
        )

    def _start_embedder(self, model: Model, s: EngineSettings) -> Embedder | None:
        """The embedding context and its thread; a model that cannot embed only loses them."""
        # Half the cores: embedding batches then slow generation down, never stall it.
        threads = max(1, resolve_threads(s.threads) // 2)
        try:
            embedder = Embedder(model, threads=threads, max_queue=max(s.max_queue, 4))
        except EngineFailure as exc:
            self._embeddings_off = f"this model cannot embed: {exc.message}"
            log.warning("embeddings are off: %s", exc.message)
            return None
        info = embedder.info
        log.info(
            "embeddings: %d dimensions, %s pooling, inputs up to %d tokens, %d per decode",
            info.dimensions,
            info.pooling,
            info.max_input_tokens,
            info.sequences,
        )
        return embedder

    def _report_backends(self, backends: Backends) -> None:
        log.info("llama.cpp backends: %s", backends.summary())
        self._metrics.build_info.info(
            {
                "cpu_variant": backends.cpu_variant,
                "gpu": backends.gpu,
                "extra_buffer_types": "on" if backends.use_extra_bufts else "off",
                "llama_cpp_python": llama_cpp_python_version(),
            }
        )

    def _plan(
        self,
        model: Model,
        cpu_budget: Budget,
        *,
        batch_size: int,
        gpu: bool,
        draft: Model | None = None,
    ) -> SizingPlan:
        """Resolve automatic parallel / contextSize (engine/sizing.py) and log the plan."""
        s = self._settings
        shape = _shape_of(model)
        draft_shape = _shape_of(draft) if draft is not None else None
        budget = cpu_budget
        if gpu:
            devices = gpu_free_memory()
            if devices:
                # Read after the weights went to the device(s): what is free is for KV + compute.
                free = sum(free for free, _total in devices)
                budget = Budget(free, "gpu free memory", includes_weights=False)
        plan = plan_for_settings(
            shape,
            budget,
            s,
            batch_size=batch_size,
            gpu=gpu,
            min_context=self._min_context,
            draft=draft_shape,
        )
        level = logging.INFO if plan.fits else logging.WARNING
        log.log(level, "engine plan: %s", plan.describe())
        return plan

    @property
    def plan(self) -> SizingPlan | None:
        """The sizing plan the model was loaded with (None before load)."""
        return self._plan_used

    @property
    def backends(self) -> Backends | None:
        """The llama.cpp backends in use: CPU variant and GPU (None before load)."""
        return self._backends

    async def start(self) -> None:
        """Load on a worker thread, so the event loop keeps answering /health and /ready."""
        await asyncio.to_thread(self.load)

    def close(self) -> None:
        """Stop the scheduler (in-flight requests end `cancelled`) and free context and model."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._ready = False
            self._reason = "stopped"
            scheduler, ctx, model = self._scheduler, self._ctx, self._model
            embedder, self._embedder = self._embedder, None
        self._metrics.model_ready.set(0)
        if embedder is not None:
            embedder.close()
        if scheduler is not None and not scheduler.close():
            return  # leak rather than free memory a running llama_decode still uses
        if ctx is not None:
            ctx.close()
        if model is not None:
            model.close()

    async def stop(self) -> None:
        """close() on a worker thread, for shutdown paths inside the event loop."""
        await asyncio.to_thread(self.close)

    def _crashed(self, reason: str) -> None:
        with self._lock:
            self._ready = False
            self._reason = reason
        self._metrics.model_ready.set(0)

    # -- state ------------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self._ready

    @property
    def not_ready_reason(self) -> str:
        """Why requests are refused ("" when ready)."""
        return self._reason

    @property
    def info(self) -> ModelInfo:
        if self._info is None:
            raise NotReadyError(self._reason or "the model is not loaded")
        return self._info

    def stats(self) -> EngineStats:
        scheduler = self._scheduler
        total = self._ctx.n_ctx if self._ctx is not None else 0
        if scheduler is None:
            return EngineStats(0, 0, self._settings.parallel, 0, total)
        waiting, active = scheduler.counts()
        return EngineStats(waiting, active, self._settings.parallel, scheduler.kv_cells_used, total)

    # -- requests ---------------------------------------------------------------------------

    def tokenize(
        self, text: str, *, add_special: bool = False, parse_special: bool = True
    ) -> list[int]:
        model = self._model
        if model is None or self._closed:
            raise NotReadyError(self._reason or "the model is not loaded")
        return model.tokenize(text, add_special=add_special, parse_special=parse_special)

    def detokenize(self, tokens: Sequence[int]) -> bytes:
        """The bytes `tokens` spell, special tokens written out (InvalidRequestError naming
        `tokens[i]` for an id outside the vocabulary)."""
        model = self._vocabulary(tokens)
        return model.detokenize(tokens)

    def token_pieces(self, tokens: Sequence[int]) -> list[bytes]:
        """Each token's own bytes (a piece may be part of a UTF-8 character)."""
        model = self._vocabulary(tokens)
        return [model.token_bytes(token) for token in tokens]

    def _vocabulary(self, tokens: Sequence[int]) -> Model:
        model = self._model
        if model is None or self._closed:
            raise NotReadyError(self._reason or "the model is not loaded")
        # llama.cpp looks ids up unchecked (std::vector::at aborts the process on a miss).
        for index, token in enumerate(tokens):
            if not 0 <= token < model.n_vocab:
                raise InvalidRequestError(
                    f"tokens[{index}] is {token}; token ids are in [0, {model.n_vocab}).",
                    param=f"tokens[{index}]",
                )
        return model

    @property
    def embedding_info(self) -> EmbeddingInfo | None:
        """The embedding context's shape, None while embeddings are not served."""
        embedder = self._embedder
        return embedder.info if embedder is not None and self._ready else None

    @property
    def embeddings_off_reason(self) -> str:
        """Why embeddings are not served ("" when they are)."""
        if self.embedding_info is not None:
            return ""
        return self._embeddings_off or self._reason or "the model is not loaded"

    def embed(self, inputs: Sequence[Sequence[int]]) -> Future[list[list[float]]]:
        """Queue token lists for the embedding worker; one L2-normalised vector per input.

        Ids and lengths are checked here (InvalidRequestError naming `input[i]`); a full
        queue raises OverloadedError. Safe on any thread; await it with asyncio.wrap_future.
        """
        embedder, model = self._embedder, self._model
        if not self._ready or embedder is None or model is None:
            raise NotReadyError(self.embeddings_off_reason)
        limit = embedder.info.max_input_tokens
        for index, tokens in enumerate(inputs):
            if not tokens:
                raise InvalidRequestError(f"input[{index}] is empty", param=f"input[{index}]")
            if len(tokens) > limit:
                raise PromptTooLongError(
                    f"input[{index}] is {len(tokens)} tokens; this server embeds at most "
                    f"{limit} tokens per input",
                    param=f"input[{index}]",
                )
            if min(tokens) < 0 or max(tokens) >= model.n_vocab:
                raise InvalidRequestError(
                    f"input[{index}] holds token ids outside [0, {model.n_vocab})",
                    param=f"input[{index}]",
                )
        return embedder.submit(inputs)

    def build_sampler(self, request: GenerationRequest) -> Chain:
        """Validate a request and build its sampler chain; safe on any thread.

        A grammar is parsed here, recursively inside llama.cpp and in time that grows with
        it, so the serving layer calls this on a large-stack worker, not the event loop, and
        hands the chain to `submit` (or to `free_sampler` if it never submits it).
        """
        model = self._model
        if not self._ready or model is None:
            raise NotReadyError(self._reason or "the model is not loaded")
        self._validate(request, model)
        return build_chain(model, request.params, context_size=self._settings.context_size)

    @staticmethod
    def free_sampler(sampler: Chain) -> None:
        free_chain(sampler)

    @contextlib.contextmanager
    def arriving(self) -> Iterator[None]:
        """Around preparing and submitting one request: a step about to start alone waits a
        moment (engine.arrivalWaitMs) for it, so requests arriving together start together."""
        scheduler = self._scheduler
        if scheduler is None:
            yield
            return
        scheduler.arriving(+1)
        try:
            yield
        finally:
            scheduler.arriving(-1)

    def submit(self, request: GenerationRequest, *, sampler: Chain = None) -> GenerationStream:
        """Queue a request; call from a running event loop, which receives its events.

        Everything that can be refused is refused here, before any event is produced. A
        `sampler` from `build_sampler` belongs to the engine from here on, refused or not.
        """
        chain = sampler
        try:
            scheduler, model = self._scheduler, self._model
            if not self._ready or scheduler is None or model is None:
                raise NotReadyError(self._reason or "the model is not loaded")
            if chain is None:
                self._validate(request, model)
                chain = build_chain(model, request.params, context_size=self._settings.context_size)
            loop = asyncio.get_running_loop()
            queue: asyncio.Queue[GenerationEvent] = asyncio.Queue()
            job = Job(request, chain, Sink(loop, queue), TextAssembler(request.params.stop))
            scheduler.submit(job)
        except BaseException:
            free_chain(chain)
            raise
        return GenerationStream(job, scheduler)

    def _validate(self, request: GenerationRequest, model: Model) -> None:
        prompt = request.prompt_tokens
        context = self._settings.context_size
        if not prompt:
            raise InvalidRequestError("the prompt is empty", param="prompt")
        if len(prompt) + 1 > context:
            # The one check of a prompt's tokens against the context (the serving layer
            # checks characters before tokenizing; surfaces respell 'prompt').
            raise PromptTooLongError(
                f"The prompt is {len(prompt)} tokens; this model serves at most {context} tokens "
                f"per request (prompt plus output). Shorten 'prompt'.",
                param="prompt",
            )
        n_vocab = model.n_vocab
        # An out-of-range id would abort the whole process inside llama_decode.
        if min(prompt) < 0 or max(prompt) >= n_vocab:
            raise InvalidRequestError(f"prompt token ids must be in [0, {n_vocab})", param="prompt")
        if request.params.max_tokens < 1:
            raise InvalidRequestError("max_tokens must be at least 1", param="max_tokens")

    def _describe(self, model: Model) -> ModelInfo:
        return ModelInfo(
            name=self._name,
            path=str(self._path),
            size_bytes=self._path.stat().st_size,
            context_size=self._settings.context_size,
            train_context_size=model.n_ctx_train,
            vocab_size=model.n_vocab,
            parallel=self._settings.parallel,
            chat_template=model.meta("tokenizer.chat_template"),
            bos_token=model.token_text(model.bos()),
            eos_token=model.token_text(model.eos()),
            metadata=model.metadata(),
        )


def _shape_of(model: Model) -> ModelShape:
    return ModelShape.from_metadata(
        model.metadata(), n_vocab=model.n_vocab, weights_bytes=model.path.stat().st_size
    )
