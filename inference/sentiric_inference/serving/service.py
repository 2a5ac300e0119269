"""The serving layer: turn a protocol-neutral request into engine work and account for it."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from sentiric_inference.config import EngineConfig
from sentiric_inference.engine.prefix import common_prefix_len
from sentiric_inference.engine.types import (
    Finished,
    FinishReason,
    GenerationEvent,
    GenerationRequest,
    SamplingParams,
    TextDelta,
)
from sentiric_inference.errors import (
    EngineFailure,
    InvalidRequestError,
    NotReadyError,
    PromptTooLongError,
    SentiricError,
)
from sentiric_inference.metrics import Metrics
from sentiric_inference.serving.access import Access, Ticket
from sentiric_inference.serving.grammar import grammar_for
from sentiric_inference.serving.keys import ANONYMOUS, Caller
from sentiric_inference.serving.params import resolve_params
from sentiric_inference.serving.preparing import Preparer
from sentiric_inference.serving.prompting import ChatTemplate
from sentiric_inference.serving.tool_grammar import tool_grammar
from sentiric_inference.serving.types import ChatInput, RequestParams, ResponseFormat, chat_chars

if TYPE_CHECKING:
    from sentiric_inference.engine.engine import Engine, GenerationStream
    from sentiric_inference.engine.sampling import Chain

log = logging.getLogger(__name__)

# Threads preparing requests (serving/preparing.py): enough that one large request does not
# hold up the small ones behind it, few enough to leave the cores to llama.cpp.
PREPARE_WORKERS = 2
# The automatic server.limits.maxPromptChars: no tokenizer packs more characters than this
# into a token on real text, so a longer prompt could never fit the context anyway.
CHARS_PER_TOKEN = 16


def model_name_for(config: EngineConfig) -> str:
    """The name /v1/models reports: the profile's alias, else the GGUF file name."""
    if config.model.alias:
        return config.model.alias
    local = config.model.local_path()
    return local.name.removesuffix(".gguf") if local is not None else "default"


class Generation:
    """One admitted request: an async iterator of TextDelta ... then exactly one Finished.

    Records time_to_first_token, request_duration and requests_total{outcome=finish reason};
    a generation abandoned before its Finished (client gone) counts as `cancelled`.
    """

    def __init__(
        self,
        stream: GenerationStream,
        *,
        api: str,
        request_id: str,
        prompt_tokens: int,
        metrics: Metrics,
        started: float,
        on_done: Callable[[Generation], None],
        ticket: Ticket | None = None,
    ) -> None:
        self.api = api
        self.request_id = request_id
        self.prompt_tokens = prompt_tokens
        self.finished: Finished | None = None
        self._stream = stream
        self._events: AsyncIterator[GenerationEvent] = stream.__aiter__()
        self._metrics = metrics
        self._started = started
        self._first_text = False
        self._ttft: float | None = None
        self._closed = False
        self._on_done = on_done
        # The caller's admission under its API key's limits, released with the tokens used.
        self._ticket = ticket
        self._completion_tokens = 0

    def __aiter__(self) -> Generation:
        return self

    async def __anext__(self) -> GenerationEvent:
        if self._closed:
            raise StopAsyncIteration
        try:
            event = await self._events.__anext__()
        except StopAsyncIteration:
            # The engine contract promises a Finished; if it ever breaks, fail loudly
            # rather than leave the client waiting for a finish_reason.
            self._close("error")
            raise
        except asyncio.CancelledError:
            self.cancel()
            raise
        if isinstance(event, TextDelta):
            self._completion_tokens = event.completion_tokens
            if not self._first_text and event.text:
                self._first_text = True
                self._ttft = time.perf_counter() - self._started
                self._metrics.time_to_first_token.labels(self.api).observe(self._ttft)
        else:
            self.finished = event
            if event.reason is FinishReason.ERROR:
                log.warning("request %s failed in the engine: %s", self.request_id, event.error)
            self._close(event.reason.value)
        return event

    def cancel(self) -> None:
        """Stop generating; the engine frees the sequence at its next step. Idempotent."""
        if not self._closed:
            self._stream.cancel()
            self._close(FinishReason.CANCELLED.value)

    async def aclose(self) -> None:
        self.cancel()

    def _close(self, outcome: str) -> None:
        if self._closed:
            return
        self._closed = True
        duration = time.perf_counter() - self._started
        self._metrics.requests_total.labels(self.api, outcome).inc()
        self._metrics.request_duration.labels(self.api).observe(duration)
        self._on_done(self)
        # One line per request with its shape and timings (never its text).
        finished = self.finished
        if self._ticket is not None:
            # A cancelled request is charged what it used before it stopped.
            self._ticket.release(
                outcome,
                prompt_tokens=self.prompt_tokens,
                completion_tokens=(
                    finished.completion_tokens if finished is not None else self._completion_tokens
                ),
            )
        log.info(
            "request %s %s: %d prompt + %d completion tokens in %.3fs",
            self.request_id,
            outcome,
            self.prompt_tokens,
            finished.completion_tokens if finished is not None else 0,
            duration,
            extra={
                "api": self.api,
                "outcome": outcome,
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": finished.completion_tokens if finished is not None else None,
                "cached_prompt_tokens": (
                    finished.cached_prompt_tokens if finished is not None else None
                ),
                "ttft_s": round(self._ttft, 4) if self._ttft is not None else None,
                "duration_s": round(duration, 4),
            },
        )


class Serving:
    """Validates requests, renders prompts, submits them to the one engine.

    Its place among the layers: docs/architecture.md, Layers in the server.
    """

    # Set by `drain()` (the pod's preStop hook): /ready and gRPC health say no, so load
    # balancers and balanced clients stop sending, while requests still arriving are served.
    draining = False

    def __init__(
        self,
        engine: Engine,
        config: EngineConfig,
        metrics: Metrics,
        *,
        access: Access | None = None,
    ) -> None:
        self.engine = engine
        self.config = config
        self.metrics = metrics
        self._template: ChatTemplate | None = None
        # The GGUF template text the compiled one came from (None: the model has none).
        self._template_key: str | None = None
        self._active: set[Generation] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self.model_name: str = model_name_for(config)
        # Set while the profile's system prompt is evaluated ahead (see warm_up).
        self._warming: str | None = None
        self.limits = config.server.limits
        # The profile's prompt.responseFormat: the format of every request that sends none.
        schema = config.prompt.response_format
        self.default_format = (
            ResponseFormat(type="json_schema", json_schema=schema) if schema is not None else None
        )
        # Rendering, tokenizing and grammar building happen here, not on the event loop.
        # API keys and per-key limits (server.auth); KeyFileError when the key file is unusable.
        self.access = access if access is not None else Access(config.server.auth, metrics)
        self.preparer = self._preparer = Preparer(
            PREPARE_WORKERS, max_pending=config.engine.max_queue + PREPARE_WORKERS * 32
        )

    @property
    def context_size(self) -> int:
        """Tokens per sequence: the engine's (possibly automatic) plan once loaded."""
        plan = self.engine.plan
        return plan.context_size if plan is not None else self.config.engine.context_size

    @property
    def ready(self) -> bool:
        """Whether this process should get traffic (/ready, gRPC health)."""
        return bool(self.engine.ready) and self._warming is None and not self.draining

    def drain(self) -> None:
        """Stop advertising readiness for good; shutdown (SIGTERM) follows."""
        self.draining = True

    @property
    def not_ready_reason(self) -> str:
        if self.draining:
            return "draining: this replica is shutting down"
        if not self.engine.ready:
            return str(self.engine.not_ready_reason)
        return self._warming or ""

    async def start(self) -> None:
        """Check the profile's default schema, load the model, evaluate the system prompt ahead."""
        if self.default_format is not None:
            # Its bounds were checked with the config; the grammar's size only shows once
            # built, and a default that can never be served should stop the server at start.
            await asyncio.to_thread(
                grammar_for, self.default_format, "prompt.responseFormat", self.limits
            )
        await self.engine.start()
        await self.warm_up()

    async def warm_up(self) -> None:
        """Evaluate what every chat request of the profile opens with, once, before /ready.

        With a long profile system prompt (a phone assistant's instructions and RAG rules),
        the first calls after a pod starts would otherwise each wait for it: seconds on a
        CPU. Kept in an idle sequence's KV cells, it is then copied into every request that
        starts with it. /ready stays 503 meanwhile, so a rollout keeps traffic on warm pods;
        a request that arrives anyway is served and waits for this prefill instead of
        repeating it. A failure only costs the head start, so it is logged, not raised.
        """
        if not self.config.prompt.system.strip() or not self.engine.ready:
            return
        self._warming = "evaluating the profile's system prompt"
        started = time.perf_counter()
        try:
            tokens = self._profile_opening()
            request = GenerationRequest(
                prompt_tokens=tuple(tokens),
                params=SamplingParams(temperature=0.0, max_tokens=1),
                request_id="warm-up",
                api="warm_up",
            )
            finished: Finished | None = None
            async for event in self.engine.submit(request):
                if isinstance(event, Finished):
                    finished = event
            if finished is None or finished.reason not in (FinishReason.STOP, FinishReason.LENGTH):
                # An error, or cancelled because the server is stopping.
                why = (finished.error or finished.reason) if finished is not None else "no result"
                raise EngineFailure(str(why))
            log.info(
                "evaluated the profile's system prompt ahead: %d tokens in %.2fs",
                len(tokens),
                time.perf_counter() - started,
            )
        except Exception as exc:  # whatever fails only costs the head start
            reason = exc.message if isinstance(exc, SentiricError) else repr(exc)
            log.warning("the profile's system prompt was not evaluated ahead: %s", reason)
        finally:
            self._warming = None

    @property
    def active(self) -> int:
        """Generations admitted and not finished yet."""
        return len(self._active)

    async def wait_idle(self) -> None:
        """Return once no generation is in flight (graceful shutdown bounds it)."""
        await self._idle.wait()

    def render_chat(self, chat: ChatInput) -> str:
        """The prompt text for a chat, with the model's template (exposed for tests/tools)."""
        return self._chat_template().render_chat(chat, self.config.prompt)

    async def start_chat(
        self,
        chat: ChatInput,
        params: RequestParams,
        *,
        api: str,
        request_id: str,
        caller: Caller = ANONYMOUS,
    ) -> Generation:
        """Validate, render, tokenize and submit a chat; raises before anything streams.

        Refusals name parameters canonically (errors.py); the caller, the API surface,
        respells them and counts the refusal in requests_total.
        """
        started = time.perf_counter()
        ticket: Ticket | None = None
        try:
            self._check_ready()
            ticket = self.access.admit(caller)
            if not chat.user_prompt and not chat.answers_tools:
                raise InvalidRequestError("'user_prompt' must not be empty.", param="user_prompt")
            params = self._with_tools(chat, params)
            rag = len(chat.rag_context or "")
            # A refusal names the part that is too long: retrieved documents, the system
            # prompt, or the prompt as a whole.
            total = chat_chars(chat)
            too_long = "prompt"
            if 2 * rag > total:
                too_long = "rag_context"
            elif 2 * len(chat.system_prompt or "") > total:
                too_long = "system_prompt"
            self._check_prompt_chars(total, too_long)
            return await self._prepare_and_submit(
                lambda: self._chat_tokens(chat),
                params,
                api=api,
                request_id=request_id,
                started=started,
                ticket=ticket,
                tenant=caller.name,
                grammar=None if chat.tools is None else lambda: self._tool_grammar(chat),
            )
        except SentiricError as exc:
            if ticket is not None:
                ticket.release(exc.outcome)
            raise
        except BaseException:
            # Cancelled while preparing (the client left): its admission ends here.
            if ticket is not None:
                ticket.release("cancelled")
            raise

    async def start_completion(
        self,
        prompt: str,
        params: RequestParams,
        *,
        api: str,
        request_id: str,
        caller: Caller = ANONYMOUS,
    ) -> Generation:
        """Like start_chat, for a raw prompt (no template; BOS added if the model wants it).

        The caller owns the whole prompt here, control tokens included, as with llama.cpp's
        own /completion: there is no template or profile text for it to forge.
        """
        started = time.perf_counter()
        ticket: Ticket | None = None
        try:
            self._check_ready()
            ticket = self.access.admit(caller)
            if not prompt:
                raise InvalidRequestError("'prompt' must not be empty.", param="prompt")
            self._check_prompt_chars(len(prompt), "prompt")
            return await self._prepare_and_submit(
                lambda: self._tokenize(prompt, "prompt", add_special=True, parse_special=True),
                params,
                api=api,
                request_id=request_id,
                started=started,
                ticket=ticket,
                tenant=caller.name,
            )
        except SentiricError as exc:
            if ticket is not None:
                ticket.release(exc.outcome)
            raise
        except BaseException:
            if ticket is not None:
                ticket.release("cancelled")
            raise

    def _with_tools(self, chat: ChatInput, params: RequestParams) -> RequestParams:
        """The params of a request offering tools: a response_format cannot hold calls, so
        one sent with tools is refused, and the profile's default format does not apply."""
        if chat.tools is None or not chat.tools.offered:
            return params
        fmt = params.response_format
        if fmt is not None and fmt.type != "text":
            raise InvalidRequestError(
                "'response_format' cannot be combined with 'tools' (a reply may be a tool "
                "call); send tool_choice 'none' to get formatted text instead.",
                param="response_format",
            )
        return replace(params, response_format=ResponseFormat(type="text"))

    def _tool_grammar(self, chat: ChatInput) -> str | None:
        # On a preparation worker: checks every tool's schema; a grammar for forced calls.
        assert chat.tools is not None
        return tool_grammar(chat.tools, self.limits)

    def prompt_chars_limit(self) -> int:
        """server.limits.maxPromptChars, or its automatic value for the loaded context."""
        return self.limits.max_prompt_chars or CHARS_PER_TOKEN * self.engine.info.context_size

    def check_ready(self) -> None:
        """NotReadyError unless the engine serves requests (also during the warm-up)."""
        self._check_ready()

    def _check_prompt_chars(self, chars: int, param: str) -> None:
        """Refuse text far beyond what the context holds before spending time tokenizing it."""
        limit = self.prompt_chars_limit()
        if chars > limit:
            raise PromptTooLongError(
                f"The prompt text is {chars} characters; this server reads at most {limit} "
                f"(server.limits.maxPromptChars). Shorten '{param}'.",
                param=param,
            )

    async def _prepare_and_submit(
        self,
        tokens: Callable[[], list[int]],
        params: RequestParams,
        *,
        api: str,
        request_id: str,
        started: float,
        ticket: Ticket | None = None,
        tenant: str = "",
        grammar: Callable[[], str | None] | None = None,
    ) -> Generation:
        """Prepare on a worker and submit; `grammar`, when given, replaces the grammar of
        the response_format (tool calls)."""
        if params.response_format is None and self.default_format is not None:
            params = replace(params, response_format=self.default_format)

        def prepare() -> tuple[GenerationRequest, Chain]:
            # On a preparation worker: everything here costs CPU in proportion to the input.
            sampling = resolve_params(params, self.config.sampling, self.limits)
            if grammar is not None:
                sampling = replace(sampling, grammar=grammar())
            request = GenerationRequest(
                prompt_tokens=tuple(tokens()),
                params=sampling,
                request_id=request_id,
                api=api,
                tenant=tenant,
            )
            # The engine refuses a prompt its context cannot hold (PromptTooLongError).
            return request, self.engine.build_sampler(request)

        # Counted out only once submitted, so a step that waits for it finds it queued.
        with self.engine.arriving():
            request, sampler = await self._preparer.run(
                prepare, discard=lambda prepared: self.engine.free_sampler(prepared[1])
            )
            return self._submit(request, sampler, started=started, ticket=ticket)

    def _check_ready(self) -> None:
        # The engine's state, not self.ready: requests during the warm-up are served.
        if not self.engine.ready:
            raise NotReadyError(f"The model is not ready: {self.engine.not_ready_reason}")

    def _tokenize(
        self, text: str, param: str, *, add_special: bool, parse_special: bool
    ) -> list[int]:
        try:
            return self.engine.tokenize(text, add_special=add_special, parse_special=parse_special)
        except UnicodeEncodeError as exc:
            raise InvalidRequestError(
                f"'{param}' is not valid Unicode text (a lone surrogate).", param=param
            ) from exc

    def _chat_tokens(self, chat: ChatInput) -> list[int]:
        """The chat's tokens: template and profile text may hold control tokens, the
        caller's text never does (serving/prompting.py)."""
        param = "prompt"
        template = self._chat_template()
        rendered = template.render_segments(chat, self.config.prompt)
        checked = [(text, param) for text in rendered.unsplit]
        checked += [(text, param if f == "messages" else f) for text, f in rendered.structured]
        for text, where in checked:
            plain = self._tokenize(text, where, add_special=False, parse_special=False)
            if plain != self._tokenize(text, where, add_special=False, parse_special=True):
                raise InvalidRequestError(
                    f"'{where}' contains the model's control-token text, which this model's "
                    "chat template cannot keep apart from its own.",
                    param=where,
                )
        first = rendered.segments[0].text if rendered.segments else ""
        # A template that writes BOS itself must not get a second one from the tokenizer.
        add_special = not (template.bos_token and first.startswith(template.bos_token))
        tokens: list[int] = []
        for index, segment in enumerate(rendered.segments):
            tokens += self._tokenize(
                segment.text,
                param,
                add_special=add_special and index == 0,
                parse_special=segment.trusted,
            )
        return tokens

    def _profile_opening(self) -> list[int]:
        """The tokens every chat request of this profile starts with: the template's opening
        and the profile's system prompt, up to where the user's words begin."""
        one, other = (self._chat_tokens(ChatInput(user_prompt=word)) for word in ("A", "B"))
        return one[: common_prefix_len(one, other)]

    def _chat_template(self) -> ChatTemplate:
        info = self.engine.info
        source = info.chat_template or None
        if self._template is None or self._template_key != source:
            self._template = ChatTemplate(
                source, bos_token=info.bos_token, eos_token=info.eos_token
            )
            self._template_key = source
        return self._template

    def _submit(
        self,
        request: GenerationRequest,
        sampler: Chain,
        *,
        started: float,
        ticket: Ticket | None = None,
    ) -> Generation:
        # On the event loop: the engine delivers this request's events to it.
        stream = self.engine.submit(request, sampler=sampler)
        generation = Generation(
            stream,
            api=request.api,
            request_id=request.request_id,
            prompt_tokens=len(request.prompt_tokens),
            metrics=self.metrics,
            started=started,
            on_done=self._forget,
            ticket=ticket,
        )
        self._active.add(generation)
        self._idle.clear()
        return generation

    def _forget(self, generation: Generation) -> None:
        self._active.discard(generation)
        if not self._active:
            self._idle.set()
