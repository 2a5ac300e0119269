"""Embeddings for the API surfaces: bounds first, tokenizing off the loop, the engine's worker.

One call embeds a list of texts (or token-id lists) for one caller. It is refused before any
work when embeddings are off (FeatureOffError, 501), when it holds more inputs than
server.limits.maxEmbeddingInputs, or when an input has more characters than its tokens could
ever fit the embedding context. Tokenizing runs on the preparation threads, the vectors come
from the engine's embedding worker (engine/embedding.py), and the event loop only awaits.
Each call counts against its caller's requestsPerMinute and maxConcurrent, and its input
tokens against tokensPerMinute; requests_total (answered or cancelled calls: the API surface
counts refusals) and request_duration count it under its API.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sentiric_inference.errors import (
    FeatureOffError,
    InvalidRequestError,
    PromptTooLongError,
    SentiricError,
)
from sentiric_inference.serving.access import OUTCOME_OK
from sentiric_inference.serving.keys import ANONYMOUS, Caller
from sentiric_inference.serving.service import CHARS_PER_TOKEN

if TYPE_CHECKING:
    from sentiric_inference.engine.embedding import EmbeddingInfo
    from sentiric_inference.serving.service import Serving

# One input: a text, or the token ids of one (OpenAI accepts both).
EmbeddingInput = str | Sequence[int]


@dataclass(frozen=True, slots=True)
class Embedded:
    """One vector per input, in order, and the tokens they were computed from."""

    vectors: list[list[float]]
    prompt_tokens: int


def _input_name(param: str, index: int, single: bool) -> str:
    """How the client wrote input `index`: `input` for a lone string, else `input[3]`."""
    return param if single else f"{param}[{index}]"


class Embeddings:
    """The served model's embedding vectors, as an API (see the module docstring)."""

    def __init__(self, serving: Serving) -> None:
        self._serving = serving

    @property
    def info(self) -> EmbeddingInfo | None:
        """The embedding context's shape; None while embeddings are not served."""
        return self._serving.engine.embedding_info

    def check_on(self) -> EmbeddingInfo:
        """The embedding context, or NotReadyError (loading) / FeatureOffError (off)."""
        serving = self._serving
        serving.check_ready()
        info = self.info
        if info is None:
            raise FeatureOffError(
                f"Embeddings are not served by this server: {serving.engine.embeddings_off_reason}"
                " (engine.embeddings in the profile)."
            )
        return info

    async def embed(
        self,
        inputs: Sequence[EmbeddingInput],
        *,
        api: str,
        caller: Caller = ANONYMOUS,
        param: str = "input",
        single: bool = False,
        dimensions: int | None = None,
        dimensions_param: str = "dimensions",
        truncate: bool = False,
    ) -> Embedded:
        """Vectors for `inputs`; `single` when the client sent one bare input (so a refusal
        names `input`, not `input[0]`); `truncate` cuts an input longer than the embedding
        context to its first tokens instead of refusing it (Ollama's default). Raises the
        serving layer's errors, fields named as the client wrote them."""
        serving = self._serving
        started = time.perf_counter()
        outcome = "error"
        refused = False
        ticket = None
        prompt_tokens = 0
        try:
            info = self.check_on()
            self._check(inputs, info, param, single, dimensions, dimensions_param, truncate)
            ticket = serving.access.admit(caller)
            keep = info.max_input_tokens if truncate else None
            tokens = await serving.preparer.run(lambda: self._tokens(inputs, param, single, keep))
            prompt_tokens = sum(map(len, tokens))
            future = serving.engine.embed(tokens)
            try:
                # The loop only awaits: the worker thread decodes and resolves the future.
                vectors = await asyncio.wrap_future(future)
            except BaseException:
                future.cancel()  # drops this request's inputs not decoded yet
                raise
            outcome = OUTCOME_OK
            return Embedded(vectors, prompt_tokens)
        except SentiricError as exc:
            # Refused: the API surface counts it in requests_total at its error boundary.
            outcome, refused = exc.outcome, True
            if exc.param is not None and exc.param.startswith("input"):
                # The engine names inputs `input[i]`; the wire may call them otherwise.
                raise _renamed(exc, param, single) from exc
            raise
        except BaseException:
            outcome = "cancelled"
            raise
        finally:
            if not refused:
                serving.metrics.requests_total.labels(api, outcome).inc()
            serving.metrics.request_duration.labels(api).observe(time.perf_counter() - started)
            if ticket is not None:
                ticket.release(outcome, prompt_tokens=prompt_tokens)

    def _check(
        self,
        inputs: Sequence[EmbeddingInput],
        info: EmbeddingInfo,
        param: str,
        single: bool,
        dimensions: int | None,
        dimensions_param: str,
        truncate: bool,
    ) -> None:
        """Refuse what can never be served before spending anything on it."""
        limit = self._serving.limits.max_embedding_inputs
        if not inputs:
            raise InvalidRequestError(f"'{param}' must hold at least one input.", param=param)
        if len(inputs) > limit:
            raise InvalidRequestError(
                f"'{param}' holds {len(inputs)} inputs; this server embeds at most {limit} per "
                "request (server.limits.maxEmbeddingInputs).",
                param=param,
            )
        if dimensions is not None and dimensions != info.dimensions:
            raise InvalidRequestError(
                f"'{dimensions_param}' is {dimensions}; this model's embeddings have "
                f"{info.dimensions} dimensions and are not shortened.",
                param=dimensions_param,
            )
        total = sum(map(len, inputs))
        if total > self._serving.prompt_chars_limit():
            raise PromptTooLongError(
                f"'{param}' holds {total} characters (or token ids) in all; this server reads "
                f"at most {self._serving.prompt_chars_limit()} per request "
                "(server.limits.maxPromptChars).",
                param=param,
            )
        # No tokenizer packs more characters than this into a token on real text; cut to
        # fit, an input is still tokenized whole first, so it is bounded like a prompt.
        max_chars = (
            self._serving.prompt_chars_limit()
            if truncate
            else CHARS_PER_TOKEN * info.max_input_tokens
        )
        for index, item in enumerate(inputs):
            name = _input_name(param, index, single)
            if len(item) == 0:
                raise InvalidRequestError(f"'{name}' is empty.", param=name)
            if isinstance(item, str) and len(item) > max_chars:
                raise PromptTooLongError(
                    f"'{name}' is {len(item)} characters; this server embeds at most "
                    f"{info.max_input_tokens} tokens per input"
                    + (f" and reads at most {max_chars} characters." if truncate else "."),
                    param=name,
                )
            if not isinstance(item, str) and len(item) > max_chars:
                raise PromptTooLongError(
                    f"'{name}' holds {len(item)} token ids; this server reads at most {max_chars}.",
                    param=name,
                )
            if not truncate and not isinstance(item, str) and len(item) > info.max_input_tokens:
                raise PromptTooLongError(
                    f"'{name}' is {len(item)} tokens; this server embeds at most "
                    f"{info.max_input_tokens} tokens per input.",
                    param=name,
                )

    def _tokens(
        self, inputs: Sequence[EmbeddingInput], param: str, single: bool, keep: int | None
    ) -> list[list[int]]:
        # On a preparation worker. The caller's text never holds control tokens; BOS is
        # added where the model wants one, as for a completion's prompt.
        engine = self._serving.engine
        out: list[list[int]] = []
        for index, item in enumerate(inputs):
            if not isinstance(item, str):
                out.append(list(item))
                continue
            try:
                out.append(engine.tokenize(item, add_special=True, parse_special=False))
            except UnicodeEncodeError as exc:
                name = _input_name(param, index, single)
                raise InvalidRequestError(
                    f"'{name}' is not valid Unicode text (a lone surrogate).", param=name
                ) from exc
        return out if keep is None else [tokens[:keep] for tokens in out]


def _renamed(exc: SentiricError, param: str, single: bool) -> SentiricError:
    """`exc` with its `input[i]` field (and message) spelled as the client wrote it."""
    old = exc.param or ""
    index_text = old.removeprefix("input").strip("[]")
    if not index_text.isdigit():
        return exc
    new = _input_name(param, int(index_text), single)
    if new == old:
        return exc
    return type(exc)(exc.message.replace(old, new), param=new)
