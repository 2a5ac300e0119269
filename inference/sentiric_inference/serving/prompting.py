"""Build the prompt text with the model's own chat template (DESIGN §4)."""

from __future__ import annotations

import datetime
import logging
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


def build_messages(chat: ChatInput, prompt: PromptSettings) -> list[dict[str, str]]:
    """The conversation handed to the template, in DESIGN §4's order.

    Profile and request system prompts become one system message (profile first, since it
    sets the policy the request refines); RAG context wraps only the final user prompt.
    """
    messages: list[dict[str, str]] = []
    system = "\n\n".join(p for p in (prompt.system, chat.system_prompt or "") if p.strip())
    if system:
        messages.append({"role": "system", "content": system})
    messages.extend({"role": turn.role, "content": turn.content} for turn in chat.history)
    user = chat.user_prompt
    if chat.rag_context is not None and chat.rag_context.strip():
        # str.replace, not str.format: user text may contain braces.
        user = prompt.rag_template.replace("{rag_context}", chat.rag_context).replace(
            "{user_prompt}", chat.user_prompt
        )
    messages.append({"role": "user", "content": user})
    return messages


class ChatTemplate:
    """One compiled chat template plus the special-token text it needs."""

    def __init__(self, source: str | None, *, bos_token: str, eos_token: str) -> None:
        if source is None:
            log.warning("the model has no tokenizer.chat_template; falling back to ChatML")
            source = CHATML_TEMPLATE
        self.source = source
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
