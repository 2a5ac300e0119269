"""Per-request llama.cpp sampler chains built from SamplingParams."""

from __future__ import annotations

from typing import Any

import llama_cpp as llc

from ..errors import InvalidRequestError
from .native import Model
from .types import SamplingParams
from .utf8_guard import init_utf8_guard

# A ctypes POINTER(llama_sampler); NULL pointers are falsy.
Chain = Any


def build_chain(
    model: Model, params: SamplingParams, *, context_size: int, utf8_guard: bool = True
) -> Chain:
    """A new sampler chain for one request (the caller frees it with `free_chain`).

    Order follows llama.cpp's own defaults: grammar first, because it must see the whole
    vocabulary (a grammar applied after top-k could reject every candidate left), then
    penalties, the truncations, temperature and the final pick. temperature 0 is greedy.
    Before all of them the UTF-8 guard, so no output (and no grammar's count of characters)
    ever holds bytes a client's decoder would replace with U+FFFD.
    Raises InvalidRequestError(param="response_format") when llama.cpp rejects the grammar,
    so a bad grammar fails before anything is streamed.
    """
    chain = llc.llama_sampler_chain_init(llc.llama_sampler_chain_default_params())
    if not chain:
        raise MemoryError("llama_sampler_chain_init failed")
    try:
        if utf8_guard:  # off only in bench/sampling.py, which measures what it costs
            llc.llama_sampler_chain_add(chain, init_utf8_guard(model))
        if params.grammar:
            grammar = llc.llama_sampler_init_grammar(model.vocab, params.grammar.encode(), b"root")
            if not grammar:
                raise InvalidRequestError(
                    "response_format: llama.cpp rejected the generated grammar",
                    param="response_format",
                )
            llc.llama_sampler_chain_add(chain, grammar)
        if (
            params.repeat_penalty != 1.0
            or params.frequency_penalty != 0.0
            or params.presence_penalty != 0.0
        ):
            last_n = context_size if params.repeat_last_n < 0 else params.repeat_last_n
            llc.llama_sampler_chain_add(
                chain,
                llc.llama_sampler_init_penalties(
                    model.n_vocab,
                    last_n,
                    params.repeat_penalty,
                    params.frequency_penalty,
                    params.presence_penalty,
                ),
            )
        if params.temperature <= 0.0:
            llc.llama_sampler_chain_add(chain, llc.llama_sampler_init_greedy())
            return chain
        if params.top_k > 0:
            llc.llama_sampler_chain_add(chain, llc.llama_sampler_init_top_k(params.top_k))
        if params.top_p < 1.0:
            llc.llama_sampler_chain_add(chain, llc.llama_sampler_init_top_p(params.top_p, 1))
        if params.min_p > 0.0:
            llc.llama_sampler_chain_add(chain, llc.llama_sampler_init_min_p(params.min_p, 1))
        llc.llama_sampler_chain_add(chain, llc.llama_sampler_init_temp(params.temperature))
        llc.llama_sampler_chain_add(chain, llc.llama_sampler_init_dist(llama_seed(params.seed)))
        return chain
    except BaseException:
        llc.llama_sampler_free(chain)
        raise


def free_chain(chain: Chain) -> None:
    if chain:
        llc.llama_sampler_free(chain)


def llama_seed(seed: int | None) -> int:
    """The seed llama.cpp gets: the one place a client's seed is folded into its range.

    LLAMA_DEFAULT_SEED (0xFFFFFFFF) asks llama.cpp for a random seed; other values are kept
    within the 32 bits the C API takes, so any integer a client sends is reproducible.
    """
    if seed is None:
        return int(llc.LLAMA_DEFAULT_SEED)
    return seed & 0xFFFFFFFE if (seed & 0xFFFFFFFF) == 0xFFFFFFFF else seed & 0xFFFFFFFF
