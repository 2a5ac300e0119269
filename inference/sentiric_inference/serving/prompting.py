"""Build the prompt text with the model's own chat template.

The parts and their order: docs/architecture.md, A prompt's parts.

What the template and the profile write (`<|im_start|>`, the system prompt, the RAG
template) is trusted; what a caller sends (its messages, history, RAG context) is not, and
must never become control tokens: `x<|im_end|><|im_start|>system` in a user message would
otherwise forge a system turn. `render_segments` therefore renders with a unique placeholder
in place of each caller-owned text and splits the result there, so the serving layer can
tokenize the trusted parts with special-token parsing and the caller's parts without it.
"""

from __future__ import annotations

import datetime
import functools
import json
import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from sentiric_inference.config import PromptSettings
from sentiric_inference.errors import InvalidRequestError
from sentiric_inference.serving.types import ChatInput, ChatTurn, ToolCall

log = logging.getLogger(__name__)

# Used only when the GGUF carries no `tokenizer.chat_template` (Qwen's own format).
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


class TemplateRequestError(jinja2.TemplateError):
    """Raised by a template's own `raise_exception(...)`: the conversation shape is refused."""


def _raise_exception(message: str) -> NoReturn:
    raise TemplateRequestError(message)


def _tojson(
    value: Any, indent: int | None = None, separators: Any = None, sort_keys: bool = False
) -> str:
    # Hugging Face's tojson, which chat templates are written for (Qwen's renders tools and
    # call arguments with it): key order kept, no HTML escaping. Jinja's own sorts keys and
    # writes `<` as \u003c, which is not the text the model was trained on.
    return json.dumps(
        value, ensure_ascii=False, indent=indent, separators=separators, sort_keys=sort_keys
    )


def _strftime_now(fmt: str) -> str:
    # Some templates (Llama 3.x) stamp today's date into the system prompt.
    return datetime.datetime.now().strftime(fmt)


@dataclass(frozen=True, slots=True)
class PromptSegment:
    """A run of prompt text; `trusted` text may contain the model's control tokens."""

    text: str
    trusted: bool


@dataclass(frozen=True, slots=True)
class RenderedPrompt:
    segments: list[PromptSegment]
    # Caller texts inside a trusted segment (only when the template rewrote placeholders):
    # the serving layer refuses the request if any of them holds control-token text.
    unsplit: tuple[str, ...] = ()
    # The same for caller text rendered from structured values (tools, tool calls), with
    # the request field each came from (prompting.structured_texts).
    structured: tuple[tuple[str, str], ...] = ()


# How tools are offered to a model whose template does not take `tools` (SmolLM2's): the
# Hermes / Qwen 2.5 layout, in the system prompt, so one parser reads every model's calls.
GENERIC_TOOLS_INTRO = (
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
)
GENERIC_TOOLS_OUTRO = (
    "\n</tools>\n\nFor each function call, return a json object with function name and "
    "arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n"
    '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'
)


def tools_json(chat: ChatInput) -> str:
    """The offered tools as the generic prompt lists them: one JSON object a line."""
    if chat.tools is None:
        return ""
    return "\n".join(json.dumps(tool.definition, ensure_ascii=False) for tool in chat.tools.tools)


def _call_json(call: ToolCall) -> str:
    return json.dumps({"name": call.name, "arguments": call.arguments}, ensure_ascii=False)


def structured_texts(chat: ChatInput, *, native_tools: bool) -> tuple[tuple[str, str], ...]:
    """(text, field) of caller text a template renders from structured values (tool
    definitions, call names, arguments and ids), which no placeholder can stand in for: the
    serving layer checks it holds no control-token text instead."""
    if not native_tools:
        return ()
    texts: list[tuple[str, str]] = []
    if chat.tools is not None and chat.tools.offered:
        texts.append((tools_json(chat), "tools"))
    for turn in chat.history:
        texts += [(_call_json(call) + call.id, "messages") for call in turn.tool_calls]
        if turn.tool_call_id:
            texts.append((turn.tool_call_id, "messages"))
    return tuple(texts)


def _native_turn(turn: ChatTurn, own: Callable[[str], str]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": turn.role, "content": own(turn.content)}
    if turn.tool_calls:
        message["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in turn.tool_calls
        ]
    if turn.tool_call_id is not None:
        message["tool_call_id"] = turn.tool_call_id
    return message


def _generic_turns(
    history: tuple[ChatTurn, ...], own: Callable[[str], str]
) -> list[dict[str, Any]]:
    """History for a template without tool support: calls written into the assistant's text
    as <tool_call> blocks, and each run of tool results as one user message of
    <tool_response> blocks (what Qwen 2.5's own template does)."""
    messages: list[dict[str, Any]] = []
    for turn in history:
        if turn.role == "tool":
            block = f"<tool_response>\n{own(turn.content)}\n</tool_response>"
            if messages and messages[-1].get("tool_results"):
                messages[-1]["content"] += "\n" + block
            else:
                messages.append({"role": "user", "content": block, "tool_results": True})
            continue
        content = own(turn.content)
        for call in turn.tool_calls:
            content += (
                "\n" if content else ""
            ) + f"<tool_call>\n{own(_call_json(call))}\n</tool_call>"
        messages.append({"role": turn.role, "content": content})
    for message in messages:
        message.pop("tool_results", None)
    return messages


def build_messages(
    chat: ChatInput,
    prompt: PromptSettings,
    caller: Callable[[str], str] | None = None,
    *,
    native_tools: bool = True,
) -> list[dict[str, Any]]:
    """The conversation handed to the template, in the order docs/architecture.md gives.

    Profile and request system prompts become one system message (profile first, since it
    sets the policy the request refines); RAG context wraps only the final user prompt.
    `caller`, when given, maps each caller-owned text to what stands in for it. With
    `native_tools` false, tools and tool turns are written as text (GENERIC_TOOLS_INTRO).
    """
    own: Callable[[str], str] = caller or (lambda text: text)
    messages: list[dict[str, Any]] = []
    parts = [prompt.system] if prompt.system.strip() else []
    if chat.system_prompt and chat.system_prompt.strip():
        parts.append(own(chat.system_prompt))
    if not native_tools and chat.tools is not None and chat.tools.offered:
        parts.append(GENERIC_TOOLS_INTRO + own(tools_json(chat)) + GENERIC_TOOLS_OUTRO)
    if parts:
        messages.append({"role": "system", "content": "\n\n".join(parts)})
    if native_tools:
        messages.extend(_native_turn(turn, own) for turn in chat.history)
    else:
        messages.extend(_generic_turns(chat.history, own))
    if chat.answers_tools:
        return messages
    user = own(chat.user_prompt)
    if chat.rag_context is not None and chat.rag_context.strip():
        # str.replace, not str.format: user text may contain braces.
        user = prompt.rag_template.replace("{rag_context}", own(chat.rag_context)).replace(
            "{user_prompt}", user
        )
    messages.append({"role": "user", "content": user})
    return messages


class _Placeholders:
    """Stands in for caller-owned texts with markers no text of this request contains."""

    def __init__(self, chat: ChatInput, prompt: PromptSettings, template_source: str) -> None:
        texts = [chat.user_prompt, chat.system_prompt or "", chat.rag_context or ""]
        texts += [turn.content for turn in chat.history]
        texts += [prompt.system, prompt.rag_template, tools_json(chat)]
        texts += [text for text, _ in structured_texts(chat, native_tools=True)]
        while True:
            self.nonce = secrets.token_hex(8)
            if self.nonce not in template_source and not any(self.nonce in t for t in texts):
                break
        self.texts: list[str] = []
        self.pattern = re.compile(rf"\[\[{self.nonce}:(\d+)\]\]")

    def __call__(self, text: str) -> str:
        if not text:
            # Templates test content for emptiness; an empty text keeps its meaning.
            return text
        self.texts.append(text)
        return f"[[{self.nonce}:{len(self.texts) - 1}]]"


class ChatTemplate:
    """One compiled chat template plus the special-token text it needs."""

    def __init__(self, source: str | None, *, bos_token: str, eos_token: str) -> None:
        if source is None:
            log.warning("the model has no tokenizer.chat_template; falling back to ChatML")
            source = CHATML_TEMPLATE
        self.source = source
        self._warned_fallback = False
        self.bos_token = bos_token
        self.eos_token = eos_token
        # Same environment settings as Hugging Face transformers, so templates written for it
        # render identically; the sandbox keeps a malicious GGUF template from escaping.
        env = ImmutableSandboxedEnvironment(
            trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
        )
        env.globals["raise_exception"] = _raise_exception
        env.globals["strftime_now"] = _strftime_now
        env.filters["tojson"] = _tojson
        try:
            self._template = env.from_string(source)
        except jinja2.TemplateSyntaxError as exc:
            log.error("the model's chat template does not compile (%s); using ChatML", exc)
            self.source = CHATML_TEMPLATE
            self._template = env.from_string(CHATML_TEMPLATE)

    def render_segments(self, chat: ChatInput, prompt: PromptSettings) -> RenderedPrompt:
        """The rendered prompt as trusted (template, profile) and caller-owned segments.

        Falls back to one segment per rendering with the real texts, marked untrusted
        where a caller text contains markers, when the template does not copy each
        placeholder exactly once (a template that rewrites message content).
        """
        holders = _Placeholders(chat, prompt, self.source)
        native = self.supports_tools
        rendered = self.render(
            build_messages(chat, prompt, holders, native_tools=native),
            **self._tool_kwargs(chat, native),
        )
        segments: list[PromptSegment] = []
        seen: list[int] = []
        position = 0
        for match in holders.pattern.finditer(rendered):
            index = int(match.group(1))
            if match.start() > position:
                segments.append(PromptSegment(rendered[position : match.start()], True))
            segments.append(PromptSegment(holders.texts[index], False))
            seen.append(index)
            position = match.end()
        if sorted(seen) != list(range(len(holders.texts))):
            return self._fallback(chat, prompt, holders.texts)
        if position < len(rendered):
            segments.append(PromptSegment(rendered[position:], True))
        return RenderedPrompt(segments, structured=structured_texts(chat, native_tools=native))

    def _fallback(
        self, chat: ChatInput, prompt: PromptSettings, caller_texts: list[str]
    ) -> RenderedPrompt:
        if not self._warned_fallback:
            log.warning(
                "the chat template rewrites message content, so caller text cannot be kept "
                "apart from control tokens by placeholders; caller text containing "
                "control-token text will be refused"
            )
            self._warned_fallback = True
        native = self.supports_tools
        text = self.render_chat(chat, prompt)
        return RenderedPrompt(
            [PromptSegment(text, True)],
            tuple(caller_texts),
            structured_texts(chat, native_tools=native),
        )

    def render_chat(self, chat: ChatInput, prompt: PromptSettings) -> str:
        """The whole prompt text of a chat, tools included."""
        native = self.supports_tools
        return self.render(
            build_messages(chat, prompt, native_tools=native), **self._tool_kwargs(chat, native)
        )

    @functools.cached_property
    def supports_tools(self) -> bool:
        """Whether the template renders the `tools` it is given (Qwen 2.5's does; SmolLM2's
        ignores them), found the way llama.cpp finds it: render a probe tool, look for it."""
        probe = "probe_" + secrets.token_hex(6)
        tool = {
            "type": "function",
            "function": {"name": probe, "description": "", "parameters": {"type": "object"}},
        }
        try:
            text = self.render([{"role": "user", "content": "x"}], tools=[tool])
        except InvalidRequestError:
            return False
        return probe in text

    @staticmethod
    def _tool_kwargs(chat: ChatInput, native: bool) -> dict[str, Any]:
        if not native or chat.tools is None or not chat.tools.offered:
            return {}
        return {"tools": [tool.definition for tool in chat.tools.tools]}

    def render(self, messages: list[dict[str, Any]], **extra: Any) -> str:
        """Render with add_generation_prompt; a template refusal becomes a 400 on `messages`."""
        try:
            return self._template.render(
                messages=messages,
                add_generation_prompt=True,
                bos_token=self.bos_token,
                eos_token=self.eos_token,
                **extra,
            )
        except TemplateRequestError as exc:
            raise InvalidRequestError(
                f"The model's chat template refused the conversation: {exc}", param="messages"
            ) from exc
        except jinja2.TemplateError as exc:
            raise InvalidRequestError(
                f"The model's chat template failed on this conversation: {exc}", param="messages"
            ) from exc
