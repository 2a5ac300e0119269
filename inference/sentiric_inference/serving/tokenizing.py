"""Tokenize and detokenize for clients budgeting tokens (llama-server's /tokenize, /detokenize).

Both cost CPU in proportion to the input, so they run on the preparation threads like a
request's own tokenizing, bounded first by the same limits (server.limits.maxPromptChars:
the characters of `content`, and as many token ids). Each call counts against the caller's
requestsPerMinute and maxConcurrent; it generates nothing, so it uses no tokensPerMinute.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from sentiric_inference.errors import InvalidRequestError, SentiricError
from sentiric_inference.serving.access import OUTCOME_OK
from sentiric_inference.serving.keys import ANONYMOUS, Caller

if TYPE_CHECKING:
    from sentiric_inference.serving.service import Serving

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Tokenized:
    tokens: list[int]
    # Each token's bytes, when asked for (with_pieces).
    pieces: list[bytes] | None = None


class Tokenizing:
    """The tokenizer of the served model, as an API."""

    def __init__(self, serving: Serving) -> None:
        self._serving = serving

    async def tokenize(
        self,
        content: str,
        *,
        add_special: bool = False,
        parse_special: bool = False,
        with_pieces: bool = False,
        caller: Caller = ANONYMOUS,
    ) -> Tokenized:
        serving = self._serving
        limit = serving.prompt_chars_limit()
        if len(content) > limit:
            raise InvalidRequestError(
                f"'content' is {len(content)} characters; this server reads at most {limit} "
                "(server.limits.maxPromptChars).",
                param="content",
            )

        def work() -> Tokenized:
            try:
                tokens = serving.engine.tokenize(
                    content, add_special=add_special, parse_special=parse_special
                )
            except UnicodeEncodeError as exc:
                raise InvalidRequestError(
                    "'content' is not valid Unicode text (a lone surrogate).", param="content"
                ) from exc
            pieces = serving.engine.token_pieces(tokens) if with_pieces else None
            return Tokenized(tokens, pieces)

        return await self._run(work, caller)

    async def detokenize(self, tokens: Sequence[int], *, caller: Caller = ANONYMOUS) -> str:
        serving = self._serving
        limit = serving.prompt_chars_limit()
        if len(tokens) > limit:
            raise InvalidRequestError(
                f"'tokens' holds {len(tokens)} ids; this server reads at most {limit} "
                "(server.limits.maxPromptChars).",
                param="tokens",
            )
        # A token may end inside a UTF-8 character; JSON needs text, so such bytes become U+FFFD.
        return await self._run(
            lambda: serving.engine.detokenize(tokens).decode("utf-8", "replace"), caller
        )

    async def _run(self, work: Callable[[], T], caller: Caller) -> T:
        serving = self._serving
        serving.check_ready()
        ticket = serving.access.admit(caller)
        outcome = "error"
        try:
            result = await serving.preparer.run(work)
            outcome = OUTCOME_OK
            return result
        except SentiricError as exc:
            outcome = exc.outcome
            raise
        except BaseException:
            outcome = "cancelled"
            raise
        finally:
            ticket.release(outcome)
