"""The scheduler thread that owns the llama.cpp context and runs continuous batching.

Each step reads: finish cancelled → admit waiting → build batch → decode (exactly one
llama_decode for every sequence) → process outputs (sample each sequence from its own logits
row with its own sampler chain, stream text, finish what is done). The asyncio side talks to
it only through the command queue; events go back through each request's asyncio.Queue.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from ..config import EngineSettings
from ..errors import NotReadyError, OverloadedError
from ..metrics import Metrics
from .draft_model import DraftWant, ModelDrafter
from .drafting import PromptLookup
from .draining import DrainRate
from .fairness import FairQueue, queue_share
from .jobs import Job, Outbox
from .native import Batch, Context, Model
from .planning import plan_step
from .prefix import (
    SlotChoice,
    SlotView,
    awaits_shared_prefill,
    choose_slot,
    distinct_cells,
    idle_caches_to_drop,
)
from .row_sampling import RowSampler
from .sampling import free_chain
from .types import Finished, FinishReason, TextDelta

log = logging.getLogger(__name__)


@dataclass(eq=False, slots=True)
class Slot:
    """One llama.cpp sequence id and the tokens it holds in the KV cache (positions 0..n-1).

    A finished request's tokens stay as a prefix cache until the slot is taken again.
    """

    seq: int
    cached: list[int] = field(default_factory=list)
    job: Job | None = None
    last_used: int = 0


class Scheduler:
    """Runs the step loop on its own thread; submit/cancel/close are safe from any thread."""

    def __init__(
        self,
        model: Model,
        context: Context,
        settings: EngineSettings,
        metrics: Metrics,
        *,
        on_crash: Callable[[str], None],
        sampling_threads: int = 1,
        drafter: ModelDrafter | None = None,
    ) -> None:
        self._model = model
        self._ctx = context
        self._metrics = metrics
        self._on_crash = on_crash
        self._context_size = settings.context_size
        self._parallel = settings.parallel
        self._max_queue = settings.max_queue
        self._prefix_cache = settings.prefix_cache
        self._idle_cache_limit = settings.idle_cache_limit
        self._arrival_wait = settings.arrival_wait_ms / 1000
        self._draft_tokens = settings.draft_tokens
        # Guesses from a draft model when one is loaded, else from the prompt (lookup).
        self._drafter = drafter
        # Per-sequence KV streams (kvLayout "streams"): a prefix moves between sequences as
        # a whole-stream copy, trimmed after, and no cells are shared between sequences.
        self._streams = not context.unified
        self._batch = Batch(context.n_batch)
        self._sampler = RowSampler(context, sampling_threads)
        self._slots = [Slot(i) for i in range(settings.parallel)]
        self._outbox = Outbox()
        # Shared with other threads, guarded by _cond.
        self._cond = threading.Condition()
        self._commands: deque[tuple[bool, Job]] = deque()  # (is_cancel, job)
        self._n_waiting = 0  # submitted, not yet admitted
        # Of those, per tenant (named tenants only), for the queue share (fairness.py).
        self._waiting_by_tenant: dict[str, int] = {}
        self._n_active = 0  # admitted, not yet finished
        self._arriving = 0  # being prepared by the serving layer, not yet submitted
        self._closing = False
        self._drain = DrainRate()
        # Scheduler thread only.
        # Admission is round robin across tenants (API keys), FIFO within one (fairness.py).
        self._waiting: FairQueue[Job] = FairQueue(_tenant_of)
        self._running: list[Job] = []  # in admission order
        self._steps = 0
        self._admissions = 0
        self._kv_overlap = 0
        self._slot_freed = False  # a slot became idle this step (its cache may need trimming)
        self._decode_started = 0.0  # perf_counter() when this step's llama_decode began
        self.kv_cells_used = 0
        self._thread = threading.Thread(target=self._run, name="sentiric-scheduler", daemon=True)

    # -- any thread -------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def submit(self, job: Job) -> None:
        """Queue a job, or raise OverloadedError / NotReadyError without queueing it."""
        with self._cond:
            if self._closing:
                raise NotReadyError("the engine is stopped")
            if self._n_active + self._n_waiting >= self._parallel + self._max_queue:
                retry = self._drain.retry_after(self._n_waiting + 1, time.monotonic())
                raise OverloadedError(
                    f"all {self._parallel} sequences are busy and {self._max_queue} requests "
                    f"are already waiting; retry in about {retry:.0f} s",
                    retry_after=retry,
                )
            tenant = job.request.tenant
            if tenant:
                self._check_share(tenant)
                self._waiting_by_tenant[tenant] = self._waiting_by_tenant.get(tenant, 0) + 1
            self._n_waiting += 1
            self._commands.append((False, job))
            self._cond.notify()

    def arriving(self, delta: int) -> None:
        """Count a request the serving layer is preparing (+1), or has submitted or dropped (-1)."""
        with self._cond:
            self._arriving += delta
            self._cond.notify()

    def _check_share(self, tenant: str) -> None:
        """OverloadedError when this request would wait and its tenant holds its share of
        the queue already (caller holds _cond)."""
        if self._n_active + self._n_waiting < self._parallel:
            return  # a sequence is free: it will not wait
        held = self._waiting_by_tenant.get(tenant, 0)
        others = len(self._waiting_by_tenant) - (1 if held else 0)
        share = queue_share(self._max_queue, others)
        if held >= share:
            retry = self._drain.retry_after(self._n_waiting + 1, time.monotonic())
            raise OverloadedError(
                f"the requests of '{tenant}' already hold {held} of the {self._max_queue} "
                f"wait-queue places, its share while {others} other caller(s) wait and "
                f"room is kept for new ones; retry in about {retry:.0f} s",
                retry_after=retry,
            )

    def _stop_waiting(self, job: Job) -> None:
        """Count a job out of the waiting ones (caller holds _cond)."""
        self._n_waiting -= 1
        tenant = job.request.tenant
        if tenant:
            left = self._waiting_by_tenant.get(tenant, 0) - 1
            if left > 0:
                self._waiting_by_tenant[tenant] = left
            else:
                self._waiting_by_tenant.pop(tenant, None)

    def cancel(self, job: Job, *, wake: bool = True) -> None:
        """Ask for a job to end with `cancelled`; its sequence is freed at the next step.

        `wake=False` only queues the command (no lock), for finalizers that may run on any
        thread at any moment; a live job keeps the scheduler awake, so it is seen promptly.
        """
        self._commands.append((True, job))
        if wake:
            with self._cond:
                self._cond.notify()

    def counts(self) -> tuple[int, int]:
        """(requests waiting for a sequence, sequences in use)."""
        with self._cond:
            return self._n_waiting, self._n_active

    def close(self, timeout: float = 120.0) -> bool:
        """Stop the thread; every in-flight request ends with Finished(CANCELLED).

        Returns False if the thread is still running (then the context must not be freed).
        """
        with self._cond:
            self._closing = True
            self._cond.notify()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("scheduler thread did not stop within %.0f s", timeout)
                return False
        self._batch.close()
        self._sampler.close()
        if self._drafter is not None:
            self._drafter.close()
        return True

    # -- scheduler thread -------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while self._wait_for_work():
                self._step()
        except Exception as exc:
            log.exception("scheduler thread failed; failing every request")
            reason = f"scheduler failed: {exc!r}"
            self._fail_all(FinishReason.ERROR, reason)
            self._on_crash(reason)
        else:
            self._fail_all(FinishReason.CANCELLED, None)
        finally:
            self._outbox.flush()

    def _wait_for_work(self) -> bool:
        with self._cond:
            while not (self._closing or self._commands or self._running or self._waiting):
                self._cond.wait()
            return not self._closing

    def _step(self) -> None:
        self._gather_arrivals()
        self._apply_commands()
        self._finish_cancelled()
        self._admit()
        if self._running and self._build_batch():
            # Hand over the previous step's events right before llama_decode releases the
            # GIL: the event loop then handles them while the decode runs, instead of both
            # threads contending for the GIL over this thread's Python work.
            self._outbox.flush()
            if self._decode():
                self._process_outputs()
        if self._slot_freed and self._idle_cache_limit:
            self._trim_idle_caches()
        self._slot_freed = False
        self._publish()
        if not self._running:
            self._outbox.flush()
        self._steps += 1

    def _gather_arrivals(self) -> None:
        """Before the first step after an idle spell, let requests still being prepared join it.

        A wave of calls reaches the engine a few milliseconds apart (each is rendered and
        tokenized first); without this the first call's prefill step starts alone and the
        others wait for it to end before theirs, a whole step more to their first token.
        Only an idle engine waits: no stream stalls and no prefill under way is delayed.
        """
        if self._arrival_wait <= 0 or self._running:
            return
        deadline = time.monotonic() + self._arrival_wait
        with self._cond:
            while self._arriving > 0 and not self._closing:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._cond.wait(left)

    def _apply_commands(self) -> None:
        commands = self._commands
        while commands:
            is_cancel, job = commands.popleft()
            if not is_cancel:
                self._waiting.append(job)
            elif not job.finished:
                job.cancelled = True

    def _finish_cancelled(self) -> None:
        for job in self._waiting.remove_if(_is_cancelled):
            self._finish(job, FinishReason.CANCELLED)
        for job in [j for j in self._running if j.cancelled]:
            self._finish(job, FinishReason.CANCELLED)

    def _admit(self) -> None:
        # Requests that wait for a running prefill to reach their shared prefix keep their
        # place at the head of the queue, and a slot each, so later requests cannot take it.
        held: list[Job] = []
        while self._waiting and len(self._running) + len(held) < self._parallel:
            job = self._waiting.popleft()
            choice = choose_slot(job.prompt, self._slot_views(), reuse=self._prefix_cache)
            if self._prefix_cache and awaits_shared_prefill(
                job.prompt,
                choice.reuse,
                ((j.prompt, j.prompt_done) for j in self._running if not j.generating),
            ):
                held.append(job)
                continue
            self._place(job, choice)
        if held:
            self._waiting.put_front(held)

    def _place(self, job: Job, choice: SlotChoice) -> None:
        slot = self._slots[choice.target]
        reuse = choice.reuse
        if choice.source == choice.target:
            if len(slot.cached) > reuse:
                if not self._ctx.seq_rm(slot.seq, reuse, -1):
                    # Only models with recurrent state refuse a partial removal; start over.
                    self._ctx.seq_rm(slot.seq, -1, -1)
                    reuse = 0
                del slot.cached[reuse:]
        else:
            self._ctx.seq_rm(slot.seq, -1, -1)
            if self._streams:
                # llama.cpp copies between streams only whole: copy, then cut the tail.
                self._ctx.seq_cp(choice.source, slot.seq, -1, -1)
                self._ctx.seq_rm(slot.seq, reuse, -1)
            else:
                self._ctx.seq_cp(choice.source, slot.seq, 0, reuse)
            slot.cached = self._slots[choice.source].cached[:reuse]
        slot.job = job
        job.seq = slot.seq
        job.prompt_done = job.cached_prompt = reuse
        job.admitted_at = self._admissions
        self._admissions += 1
        self._running.append(job)
        with self._cond:
            self._stop_waiting(job)
            self._n_active += 1
        self._metrics.prompt_tokens.inc(len(job.prompt))
        if reuse:
            self._metrics.prefix_cache_hits.inc()
            self._metrics.prefix_cache_tokens.inc(reuse)
        self._recount_kv()

    def _build_batch(self) -> bool:
        generating: list[Job] = []
        prefilling: list[Job] = []
        for job in self._running:
            job.out_index = -1
            job.in_batch = 0
            (generating if job.generating else prefilling).append(job)
        plan = plan_step(
            len(generating),
            [len(j.prompt) - j.prompt_done for j in prefilling],
            self._batch.capacity,
            rotation=self._steps,
        )
        batch = self._batch
        batch.clear()
        slots = self._slots
        spare = self._draft_room(batch.capacity - plan.tokens)
        stepping = [generating[i] for i in plan.generating]
        self._make_drafts(stepping, spare)
        for job in stepping:
            pos = len(slots[job.seq].cached)
            job.out_index = batch.add(job.pending, pos, job.seq, True)
            # Guessed tokens go right after the real one: a sequence's tokens in a batch must
            # have consecutive positions, and each needs its logits to be checked.
            for offset, token in enumerate(job.draft, 1):
                batch.add(token, pos + offset, job.seq, True)
            job.in_batch = 1 + len(job.draft)
        for job, n in zip(prefilling, plan.prefill, strict=True):
            if n:
                start, end = job.prompt_done, job.prompt_done + n
                last = end == len(job.prompt)
                index = batch.add_span(job.prompt[start:end], start, job.seq, logits_last=last)
                job.out_index = index if last else -1
                job.in_batch = n
        return batch.n > 0

    def _draft_room(self, spare: int) -> int:
        """Batch rows left for guesses: none unless drafting is on, and none when the KV
        cache is nearly full, since guesses must never cost a request its cells."""
        if not self._draft_tokens or spare <= 0:
            return 0
        free_cells = self._ctx.n_ctx - self.kv_cells_used - self._batch.capacity
        return max(0, min(spare, free_cells))

    def _make_drafts(self, jobs: list[Job], spare: int) -> None:
        """Set each job's guesses for this step, sharing the `spare` batch rows in order."""
        limits = []
        for job in jobs:
            limit = self._draft_limit(job, spare)
            limits.append(limit)
            spare -= limit
        if self._drafter is not None:
            wants = [
                DraftWant(job.seq, self._slots[job.seq].cached, job.pending, limit)
                for job, limit in zip(jobs, limits, strict=True)
            ]
            guesses = self._drafter.draft(wants) if any(limits) else [[] for _ in jobs]
            for job, guess in zip(jobs, guesses, strict=True):
                job.draft = guess
            return
        for job, limit in zip(jobs, limits, strict=True):
            job.draft = self._lookup(job, limit) if limit > 0 else []

    def _draft_limit(self, job: Job, spare: int) -> int:
        params = job.request.params
        pos = len(self._slots[job.seq].cached)
        # Past max_tokens or the sequence's context a guess could never be kept.
        return max(
            0,
            min(
                self._draft_tokens,
                spare,
                params.max_tokens - job.generated - 1,
                self._context_size - pos - 2,
            ),
        )

    def _lookup(self, job: Job, limit: int) -> list[int]:
        if job.lookup is None:
            job.lookup = PromptLookup(job.prompt)
            job.lookup.append(job.pending)
        return job.lookup.draft(limit)

    def _decode(self) -> bool:
        n_tokens = self._batch.n
        self._decode_started = time.perf_counter()
        rc = self._ctx.decode(self._batch)
        self._metrics.decode_steps.inc()
        self._metrics.batch_tokens.observe(n_tokens)
        if rc != 0:
            self._metrics.decode_errors.inc()
            self._decode_failed(rc)
            return False
        evaluated = 0
        for job in self._running:
            if not job.in_batch:
                continue
            cached = self._slots[job.seq].cached
            if job.generating:
                cached.append(job.pending)
            else:
                end = job.prompt_done + job.in_batch
                cached.extend(job.prompt[job.prompt_done : end])
                job.prompt_done = end
                evaluated += job.in_batch
        if evaluated:
            self._metrics.prompt_tokens_evaluated.inc(evaluated)
        return True

    def _decode_failed(self, rc: int) -> None:
        involved = [job for job in self._running if job.in_batch]
        if rc == 1:
            # No free KV cells. Idle prefix caches are the only cells nobody needs right now;
            # drop them and let the same batch run again next step.
            if self._drop_idle_caches():
                log.warning("KV cache full; dropped idle prefix caches and retrying")
                return
            victim = max(involved, key=lambda j: j.admitted_at)
            log.warning("KV cache full; failing the newest request %s", victim.request.request_id)
            self._release_kv(victim)
            self._finish(
                victim,
                FinishReason.ERROR,
                "the KV cache is full (no free cells for this sequence); retry later",
            )
            return
        message = f"llama_decode failed with status {rc}"
        log.error("%s; failing the %d requests in the batch", message, len(involved))
        for job in involved:
            # A failed decode may leave some of the batch's cells behind: wipe the sequence.
            self._release_kv(job)
            self._finish(job, FinishReason.ERROR, message)

    def _process_outputs(self) -> None:
        metrics = self._metrics
        jobs = [job for job in self._running if job.out_index >= 0]
        if not jobs:
            # Prompt chunks only, no logits to wait for: timed to llama_decode's return (on a
            # GPU, work still queued then is waited for, and timed, in the next step).
            metrics.step_decode_seconds.observe(time.perf_counter() - self._decode_started)
            return
        # On a GPU llama_decode returns before the work is done; reading logits waits for it,
        # so the decode is timed up to there and sampling from there.
        self._ctx.ready_logits(jobs[0].out_index)
        sampling_started = time.perf_counter()
        metrics.step_decode_seconds.observe(sampling_started - self._decode_started)
        firsts = self._sampler.sample([(job.chain, job.out_index) for job in jobs])
        outputs = [self._verify_draft(job, first) for job, first in zip(jobs, firsts, strict=True)]
        metrics.step_sampling_seconds.observe(time.perf_counter() - sampling_started)
        emitted = 0
        for job, tokens in zip(jobs, outputs, strict=True):
            for token in tokens:
                emitted += 1
                if not self._emit(job, token):
                    break
        metrics.generated_tokens.inc(emitted)

    def _verify_draft(self, job: Job, first: int) -> list[int]:
        """The tokens this step produced for `job`: the one sampled after its pending token
        and, while that matches the next guess, one more from the guess's own logits row.

        Each token is sampled from the model's distribution given the tokens actually before
        it, so the output is what plain decoding gives (token for token at temperature 0).
        KV cells of guesses that were not kept are removed.
        """
        draft = job.draft
        if not draft:
            return [first]
        tokens = [first]
        while len(tokens) <= len(draft) and tokens[-1] == draft[len(tokens) - 1]:
            tokens.append(self._ctx.sample(job.chain, job.out_index + len(tokens)))
        kept = len(tokens) - 1
        cached = self._slots[job.seq].cached
        cached.extend(draft[:kept])
        if kept < len(draft):
            self._ctx.seq_rm(job.seq, len(cached), -1)
        job.draft = []
        self._metrics.draft_tokens.inc(len(draft))
        self._metrics.draft_tokens_accepted.inc(kept)
        return tokens

    def _emit(self, job: Job, token: int) -> bool:
        """Stream one sampled token; False once the job has finished."""
        model = self._model
        job.generated += 1
        if model.is_eog(token) and not job.request.params.ignore_eos:
            self._finish_with_tail(job, FinishReason.STOP)
            return False
        piece = job.assembler.feed(model.piece(token))
        if piece.text:
            self._outbox.put(job.sink, TextDelta(piece.text, job.generated))
        if piece.stopped:
            self._finish(job, FinishReason.STOP)
        elif job.generated >= job.request.params.max_tokens:
            self._finish_with_tail(job, FinishReason.LENGTH)
        elif len(job.prompt) + job.generated >= self._context_size:
            self._finish_with_tail(job, FinishReason.CONTEXT_FULL)
        else:
            if job.lookup is not None:
                job.lookup.append(token)
            job.pending = token
            job.generating = True
            return True
        return False

    def _finish_with_tail(self, job: Job, reason: FinishReason) -> None:
        tail = job.assembler.finish()
        if tail:
            self._outbox.put(job.sink, TextDelta(tail, job.generated))
        self._finish(job, reason)

    def _finish(self, job: Job, reason: FinishReason, error: str | None = None) -> None:
        if job.finished:
            return
        job.finished = True
        free_chain(job.chain)
        job.chain = None
        if job.seq >= 0:
            slot = self._slots[job.seq]
            slot.job = None
            slot.last_used = self._steps
            self._slot_freed = True
            self._running.remove(job)
            with self._cond:
                self._n_active -= 1
                self._drain.record(time.monotonic())
        else:
            with self._cond:
                self._stop_waiting(job)
        self._outbox.put(
            job.sink,
            Finished(reason, len(job.prompt), job.generated, job.cached_prompt, error),
        )

    def _release_kv(self, job: Job) -> None:
        self._ctx.seq_rm(job.seq, -1, -1)
        self._slots[job.seq].cached.clear()
        self._recount_kv()

    def _drop_idle_caches(self) -> bool:
        idle = [slot.seq for slot in self._slots if slot.job is None and slot.cached]
        self._drop_caches(idle)
        return bool(idle)

    def _trim_idle_caches(self) -> None:
        self._drop_caches(idle_caches_to_drop(self._slot_views(), self._idle_cache_limit))

    def _slot_views(self) -> list[SlotView]:
        return [SlotView(s.seq, s.cached, s.job is None, s.last_used) for s in self._slots]

    def _drop_caches(self, seqs: list[int]) -> None:
        for seq in seqs:
            self._ctx.seq_rm(seq, -1, -1)
            self._slots[seq].cached.clear()
        if seqs:
            self._recount_kv()

    def _recount_kv(self) -> None:
        # Cells shared through seq_cp are counted once; see prefix.distinct_cells. Streams
        # share nothing.
        if not self._prefix_cache or self._streams:
            self._kv_overlap = 0
            return
        total = sum(len(s.cached) for s in self._slots)
        self._kv_overlap = total - distinct_cells([s.cached for s in self._slots])

    def _publish(self) -> None:
        used = sum(len(s.cached) for s in self._slots) - self._kv_overlap
        self.kv_cells_used = used
        m = self._metrics
        m.queue_depth.set(len(self._waiting))
        m.sequences_active.set(len(self._running))
        m.kv_cache_usage_ratio.set(used / self._ctx.n_ctx)

    def _fail_all(self, reason: FinishReason, error: str | None) -> None:
        with self._cond:
            self._closing = True
        self._apply_commands()
        for job in [*self._waiting, *self._running]:
            self._finish(job, reason, error)
        self._waiting.clear()
        self._publish()


def _tenant_of(job: Job) -> str:
    return job.request.tenant


def _is_cancelled(job: Job) -> bool:
    return job.cancelled
