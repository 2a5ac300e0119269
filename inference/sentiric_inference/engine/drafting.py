"""Prompt-lookup drafting: guess a reply's next tokens from where its last few tokens appeared.

Answers that quote their prompt (RAG replies citing a document, forms filled from a
description, product copy built from a feature list) repeat long runs of tokens the model has
already seen. When the last `n` tokens of the conversation occurred before, the tokens that
followed them then are a cheap guess for what follows now. The scheduler feeds the guess to
the same llama_decode as the real token and keeps the prefix the model itself samples
(engine/scheduler.py), so a right guess yields several tokens for one step and a wrong one
costs only the extra rows of that step.
"""

from __future__ import annotations

from collections.abc import Sequence

# Longest n-gram tried first: a three-token match is rarely a coincidence; a one-token match
# usually is, so lookups stop at two.
NGRAM_SIZES = (3, 2)


class PromptLookup:
    """One request's token history and an index of where each n-gram last ended.

    Indexing is incremental: each token is indexed once, when the next one arrives, so a
    step costs a few dictionary operations however long the prompt is.
    """

    __slots__ = ("_index", "_indexed", "_tokens")

    def __init__(self, prompt: Sequence[int]) -> None:
        self._tokens = list(prompt)
        # (n-gram) -> position of the token that followed its latest occurrence
        self._index: dict[tuple[int, ...], int] = {}
        self._indexed = 0  # positions below this have their preceding n-grams indexed

    def append(self, token: int) -> None:
        self._tokens.append(token)

    def draft(self, limit: int) -> list[int]:
        """Up to `limit` tokens that followed the latest earlier occurrence of the longest
        matching suffix (NGRAM_SIZES), or [] when there is none."""
        tokens = self._tokens
        if limit <= 0 or len(tokens) < 2:
            return []
        self._index_until(len(tokens))
        for n in NGRAM_SIZES:
            if len(tokens) < n:
                continue
            at = self._index.get(tuple(tokens[-n:]))
            if at is not None:
                return tokens[at : at + limit]
        return []

    def _index_until(self, end: int) -> None:
        # Position i is indexed under the n-grams that end just before it, so a match always
        # has a following token to offer; the suffix that ends at the last token has none
        # yet, so a lookup never finds the query itself.
        tokens, index = self._tokens, self._index
        for i in range(max(self._indexed, 1), end):
            for n in NGRAM_SIZES:
                if i >= n:
                    index[tuple(tokens[i - n : i])] = i
        self._indexed = max(self._indexed, end)
