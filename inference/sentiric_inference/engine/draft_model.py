"""Draft-model speculative decoding: a small model of the same vocabulary guesses ahead.

A 0.5B model predicts most tokens of a 3B or 7B model's answer, at a fraction of the cost per
token. `ModelDrafter` keeps a second llama.cpp context on the draft model, one sequence per
engine slot, and before each engine step guesses the next tokens of every generating sequence
in a few batched decodes of its own (one token per sequence each, greedy). The engine then
verifies the guesses in its own llama_decode exactly as it verifies prompt-lookup guesses
(engine/scheduler.py), so the output is the target model's.

The draft context follows each sequence lazily: before guessing, the tokens the sequence
holds now are compared with what the draft context holds for it; a differing tail (a new
request in the slot, or guesses the target rejected) is removed and the missing tokens are
evaluated, at most a batch's worth per step, so a long new prompt catches up over a few steps
instead of stalling one. A failed draft decode only clears the draft context: the step goes on
without guesses.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import llama_cpp as llc

from ..errors import EngineFailure
from .native import Batch, Context, Model
from .prefix import common_prefix_len

log = logging.getLogger(__name__)

# Token ids compared between the models besides the special ones: a draft model with the same
# vocabulary size but another tokenizer would guess tokens that mean something else.
_VOCAB_PROBES = 512


@dataclass(frozen=True, slots=True)
class DraftWant:
    """One generating sequence: its slot, the tokens it holds in the target's KV cache (the
    slot's own list, not a copy: read only), the sampled token not yet fed back, and how many
    guesses it may take this step."""

    seq: int
    cached: Sequence[int]
    pending: int
    limit: int


def check_same_vocabulary(draft: Model, target: Model) -> None:
    """Raise EngineFailure unless `draft` tokenizes exactly as `target` does (sampled ids)."""
    if draft.n_vocab != target.n_vocab:
        raise EngineFailure(
            f"draft model {draft.path.name} has {draft.n_vocab} tokens, the model "
            f"{target.path.name} has {target.n_vocab}: a draft model must share its vocabulary"
        )
    step = max(1, target.n_vocab // _VOCAB_PROBES)
    probes = {*range(0, target.n_vocab, step), target.eos(), target.n_vocab - 1}
    for token in sorted(t for t in probes if 0 <= t < target.n_vocab):
        if draft.token_bytes(token) != target.token_bytes(token):
            raise EngineFailure(
                f"draft model {draft.path.name} spells token {token} differently from "
                f"{target.path.name}: a draft model must share its vocabulary"
            )


def open_draft_model(path: Path, target: Model, *, gpu_layers: int) -> Model:
    """Load the draft model, refusing one whose vocabulary differs from `target`'s."""
    model = Model(path, gpu_layers=gpu_layers)
    try:
        check_same_vocabulary(model, target)
    except BaseException:
        model.close()
        raise
    return model


class ModelDrafter:
    """The draft model's context and what each of its sequences holds. Scheduler thread only."""

    def __init__(self, model: Model, context: Context) -> None:
        self._model = model
        self._ctx = context
        self._batch = Batch(context.n_batch)
        self._cached: list[list[int]] = [[] for _ in range(context.n_seq)]
        self._greedy = llc.llama_sampler_init_greedy()
        if not self._greedy:
            raise MemoryError("llama_sampler_init_greedy failed")

    @classmethod
    def on(
        cls,
        model: Model,
        *,
        n_ctx: int,
        n_seq: int,
        n_batch: int,
        threads: int,
        flash_attention: str,
    ) -> ModelDrafter:
        """A drafter over an already loaded draft model (see open_draft_model)."""
        context = Context(
            model,
            n_ctx=n_ctx,
            n_seq=n_seq,
            n_batch=n_batch,
            threads=threads,
            flash_attention=flash_attention,
        )
        return cls(model, context)

    def draft(self, wants: Sequence[DraftWant]) -> list[list[int]]:
        """Guesses for each want (possibly none), in order."""
        guesses: list[list[int]] = [[] for _ in wants]
        rows = self._catch_up(wants)
        if rows is None:
            return guesses
        rounds = max((w.limit for w in wants), default=0)
        for _ in range(rounds):
            for i, row in rows.items():
                guesses[i].append(int(llc.llama_sampler_sample(self._greedy, self._ctx.ptr, row)))
            # Feed each guess back for the next one, while the sequence may take more.
            batch = self._batch
            batch.clear()
            rows = {
                i: batch.add(guesses[i][-1], len(self._cached[wants[i].seq]), wants[i].seq, True)
                for i in rows
                if len(guesses[i]) < wants[i].limit
            }
            if not rows or not self._decode({wants[i].seq: [guesses[i][-1]] for i in rows}):
                break
        return guesses

    def _catch_up(self, wants: Sequence[DraftWant]) -> dict[int, int] | None:
        """Evaluate what each sequence lacks; {want index: logits row} of those that are
        whole (None when the decode failed)."""
        batch = self._batch
        batch.clear()
        fed: dict[int, list[int]] = {}
        rows: dict[int, int] = {}
        for i, want in enumerate(wants):
            if want.limit <= 0:
                continue
            missing = self._missing(want.seq, want.cached, want.pending)
            room = batch.capacity - batch.n
            if room <= 0:
                break
            if len(missing) > room:
                # Part of a long new prompt: this step catches up, later steps guess.
                batch.add_span(
                    missing[:room], len(self._cached[want.seq]), want.seq, logits_last=False
                )
                fed[want.seq] = missing[:room]
                continue
            rows[i] = batch.add_span(
                missing, len(self._cached[want.seq]), want.seq, logits_last=True
            )
            fed[want.seq] = missing
        if batch.n == 0 or not self._decode(fed):
            return None
        return rows

    def _missing(self, seq: int, target: Sequence[int], pending: int) -> list[int]:
        """Trim the draft's tail that differs from the target's `target` + [`pending`]; the
        tokens still to evaluate, always at least `pending` (its logits give the first guess).

        Usually the draft holds a prefix of what the target holds (one slice compare, in C);
        after guesses were rejected, or a new request took the slot, the common part is
        searched for.
        """
        cached = self._cached[seq]
        n = len(cached)
        in_step = n <= len(target) and cached == target[:n]
        keep = n if in_step else common_prefix_len(cached, target)
        if keep < n:
            self._ctx.seq_rm(seq, keep, -1)
            del cached[keep:]
        return [*target[keep:], pending]

    def _decode(self, fed: dict[int, list[int]]) -> bool:
        rc = self._ctx.decode(self._batch)
        if rc != 0:
            # Out of cells (idle sequences' tails) or a failure: start the draft context over;
            # the target model's step does not depend on it.
            log.warning("draft model decode failed (%d); clearing the draft context", rc)
            self._ctx.clear()
            for cached in self._cached:
                cached.clear()
            return False
        for seq, tokens in fed.items():
            self._cached[seq].extend(tokens)
        return True

    def close(self) -> None:
        if self._greedy:
            llc.llama_sampler_free(self._greedy)
            self._greedy = None
        self._batch.close()
        self._ctx.close()
        self._model.close()
