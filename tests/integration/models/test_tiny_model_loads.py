"""The tiny qwen2 GGUF loads in llama.cpp, tokenizes ChatML and generates deterministically."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jinja2
import llama_cpp
import pytest

from tests.support.tiny_model import IM_END, IM_START, QWEN25_CHAT_TEMPLATE

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def llm(tiny_model_path: Path) -> Iterator[Any]:
    model = llama_cpp.Llama(
        model_path=str(tiny_model_path), n_ctx=512, n_threads=1, seed=0, verbose=False
    )
    try:
        yield model
    finally:
        model.close()


def test_metadata_and_vocabulary(llm: Any) -> None:
    assert llm.metadata["general.architecture"] == "qwen2"
    assert llm.metadata["tokenizer.chat_template"] == QWEN25_CHAT_TEMPLATE
    assert llm.n_vocab() > 400
    assert llm.n_ctx() == 512
    assert llm.token_eos() == llm.tokenize(IM_END.encode(), add_bos=False, special=True)[0]


def test_chatml_special_tokens_are_single_ids(llm: Any) -> None:
    text = f"{IM_START}user\nHello, world!{IM_END}\n{IM_START}assistant\n".encode()
    ids = llm.tokenize(text, add_bos=False, special=True)
    start = llm.tokenize(IM_START.encode(), add_bos=False, special=True)
    end = llm.tokenize(IM_END.encode(), add_bos=False, special=True)
    assert len(start) == 1
    assert len(end) == 1
    assert ids.count(start[0]) == 2
    assert ids.count(end[0]) == 1
    # Without special parsing the same text is plain bytes, never the control ids.
    plain = llm.tokenize(text, add_bos=False, special=False)
    assert start[0] not in plain
    assert len(plain) > len(ids)
    # Byte-level BPE round-trips any text, including multi-byte UTF-8.
    sample = "naïve café — 東京 🚀".encode()
    round_trip = llm.detokenize(llm.tokenize(sample, add_bos=False))
    assert round_trip == sample


def test_greedy_generation_is_deterministic(llm: Any) -> None:
    prompt = f"{IM_START}user\nSay something.{IM_END}\n{IM_START}assistant\n"
    runs = [llm.create_completion(prompt, max_tokens=12, temperature=0.0) for _ in range(2)]
    assert runs[0]["choices"][0]["text"] == runs[1]["choices"][0]["text"]
    assert runs[0]["usage"]["completion_tokens"] == 12
    assert runs[0]["choices"][0]["finish_reason"] == "length"


def test_chat_template_from_metadata_drives_chat_completion(llm: Any) -> None:
    reply = llm.create_chat_completion(
        messages=[{"role": "user", "content": "Hi"}], max_tokens=5, temperature=0.0
    )
    assert reply["choices"][0]["finish_reason"] == "length"
    # The prompt llama-cpp-python built is exactly Qwen2.5's template rendered, including
    # its default system turn: the GGUF's chat template metadata was found and used.
    rendered = jinja2.Template(QWEN25_CHAT_TEMPLATE).render(
        messages=[{"role": "user", "content": "Hi"}], add_generation_prompt=True
    )
    assert rendered.startswith(f"{IM_START}system\nYou are Qwen, created by Alibaba Cloud.")
    expected = llm.tokenize(rendered.encode(), add_bos=False, special=True)
    assert reply["usage"]["prompt_tokens"] == len(expected)
