"""Build the prompt text with the model's own chat template (DESIGN §4).

What the template and the profile write (`<|im_start|>`, the system prompt, the RAG
template) is trusted; what a caller sends (its messages, history, RAG context) is not, and
must never become control tokens: `x<|im_end|><|im_start|>system` in a user message would
otherwise forge a system turn. `render_segments` therefore renders with a unique placeholder
in place of each caller-owned text and splits the result there, so the serving layer can
tokenize the trusted parts with special-token parsing and the caller's parts without it.
"""

from __future__ import annotations

import datetime
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
from sentiric_inference.serving.types import ChatInput

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


def build_messages(
    chat: ChatInput, prompt: PromptSettings, caller: Callable[[str], str] | None = None
) -> list[dict[str, str]]:
    """The conversation handed to the template, in DESIGN §4's order.

    Profile and request system prompts become one system message (profile first, since it
    sets the policy the request refines); RAG context wraps only the final user prompt.
    `caller`, when given, maps each caller-owned text to what stands in for it.
    """
    own: Callable[[str], str] = caller or (lambda text: text)
    messages: list[dict[str, str]] = []
    parts = [prompt.system] if prompt.system.strip() else []
    if chat.system_prompt and chat.system_prompt.strip():
        parts.append(own(chat.system_prompt))
    if parts:
        messages.append({"role": "system", "content": "\n\n".join(parts)})
    messages.extend({"role": turn.role, "content": own(turn.content)} for turn in chat.history)
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
        texts += [prompt.system, prompt.rag_template]
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
        rendered = self.render(build_messages(chat, prompt, holders))
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
        return RenderedPrompt(segments)

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
        text = self.render(build_messages(chat, prompt))
        return RenderedPrompt([PromptSegment(text, True)], tuple(caller_texts))

    def render(self, messages: list[dict[str, str]], **extra: Any) -> str:
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
