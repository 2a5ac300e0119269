"""The chat templates stored in the real GGUF files render ChatML, and the server uses them."""

from __future__ import annotations

from pathlib import Path

import llama_cpp
import pytest
from gguf import GGUFReader
from sentiric_inference.config import PromptSettings
from sentiric_inference.serving.prompting import ChatTemplate, build_messages
from sentiric_inference.serving.types import ChatInput, ChatTurn

from tests.integration.http.conftest import SMOL, client_for
from tests.support.server import ServerHandle

pytestmark = pytest.mark.model

SMOL_DEFAULT_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


def gguf_template(path: Path) -> str:
    field = GGUFReader(str(path)).fields["tokenizer.chat_template"]
    return bytes(field.parts[field.data[0]]).decode()


def test_smollm2_template_renders_chatml(smollm2_path: Path) -> None:
    template = ChatTemplate(
        gguf_template(smollm2_path), bos_token="<|im_start|>", eos_token="<|im_end|>"
    )
    chat = ChatInput(
        user_prompt="And now?",
        history=(ChatTurn("user", "Hi"), ChatTurn("assistant", "Hello!")),
        rag_context="The shop opens at 9.",
    )
    text = template.render(build_messages(chat, PromptSettings(system="Be kind.")))
    assert text == (
        "<|im_start|>system\nBe kind.<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nHello!<|im_end|>\n"
        "<|im_start|>user\nAnswer using only the facts below.\n\nThe shop opens at 9.\n\n"
        "Question: And now?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    # Without any system prompt the template inserts its own.
    bare = template.render(build_messages(ChatInput(user_prompt="Hi"), PromptSettings()))
    assert bare.startswith(f"<|im_start|>system\n{SMOL_DEFAULT_SYSTEM}<|im_end|>\n")


def test_tiny_model_template_renders_chatml(tiny_model_path: Path) -> None:
    template = ChatTemplate(gguf_template(tiny_model_path), bos_token="", eos_token="<|im_end|>")
    text = template.render(
        build_messages(ChatInput(user_prompt="q", system_prompt="s"), PromptSettings())
    )
    assert (
        text
        == "<|im_start|>system\ns<|im_end|>\n<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n"
    )


def test_the_server_prompts_with_the_rendered_template(
    smol_server: ServerHandle, smollm2_path: Path
) -> None:
    expected = (
        f"<|im_start|>system\n{SMOL_DEFAULT_SYSTEM}<|im_end|>\n"
        "<|im_start|>user\nWhat color is the sky?<|im_end|>\n<|im_start|>assistant\n"
    )
    vocab = llama_cpp.Llama(str(smollm2_path), vocab_only=True, verbose=False)
    try:
        tokens = vocab.tokenize(expected.encode(), add_bos=False, special=True)
    finally:
        vocab.close()
    reply = client_for(smol_server).chat.completions.create(
        model=SMOL,
        max_tokens=1,
        messages=[{"role": "user", "content": "What color is the sky?"}],
    )
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == len(tokens)
