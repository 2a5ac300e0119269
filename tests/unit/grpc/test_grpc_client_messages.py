"""Client request building and incremental UTF-8 reassembly (client.messages)."""

from __future__ import annotations

import pytest
from sentiric_inference.client import (
    Finish,
    GenerationOptions,
    TextChunk,
    TextDecoder,
    Turn,
    build_request,
)
from sentiric_inference.client.messages import events_of
from sentiric_inference.grpc_api.gen import llama_pb2


def test_request_without_options_sends_no_params() -> None:
    request = build_request("Hi", system_prompt="Be brief.", history=[Turn("user", "Hello")])
    assert not request.HasField("params")
    assert not request.HasField("rag_context")
    assert request.system_prompt == "Be brief."
    assert [(t.role, t.content) for t in request.history] == [("user", "Hello")]


def test_request_sends_exactly_the_options_set() -> None:
    request = build_request(
        "Hi",
        rag_context="",
        options=GenerationOptions(
            temperature=0.0,
            top_p=0.9,
            seed=42,
            stop_sequences=["END"],
            engine_params={"min_p": 0.2, "response_format": {"type": "json_object"}},
        ),
    )
    params = request.params
    # An explicit empty RAG context and a zero temperature are still "set".
    assert request.HasField("rag_context")
    assert params.HasField("temperature") and params.temperature == 0.0
    assert params.HasField("seed") and params.seed == 42
    assert params.top_p == pytest.approx(0.9)
    assert not params.HasField("max_new_tokens")
    assert not params.HasField("top_k")
    assert list(params.stop_sequences) == ["END"]
    assert dict(params.engine_specific_params)["min_p"] == pytest.approx(0.2)
    assert params.engine_specific_params["response_format"]["type"] == "json_object"


def test_empty_options_still_mark_params_present() -> None:
    assert build_request("Hi", options=GenerationOptions()).HasField("params")


def test_decoder_holds_back_a_split_character() -> None:
    text = "héllo, 世界 🙂"
    data = text.encode()
    decoder = TextDecoder()
    # One byte at a time: every multi-byte character arrives split.
    pieces = [decoder.feed(data[i : i + 1]) for i in range(len(data))]
    assert "".join(pieces) + decoder.flush() == text
    assert all("\ufffd" not in piece for piece in pieces)


def test_decoder_replaces_invalid_and_cut_bytes() -> None:
    decoder = TextDecoder()
    assert decoder.feed(b"ok \xff!") == "ok \ufffd!"
    assert decoder.feed("é".encode()[:1]) == ""
    assert decoder.flush() == "\ufffd"


def test_events_end_with_finish_and_flush_the_tail() -> None:
    decoder = TextDecoder()
    smile = "🙂".encode()
    first = events_of(llama_pb2.GenerateStreamResponse(token=b"a" + smile[:2]), decoder)
    assert first == [TextChunk("a")]
    finish = llama_pb2.FinishDetails(finish_reason="length", prompt_tokens=9, completion_tokens=3)
    last = events_of(llama_pb2.GenerateStreamResponse(finish_details=finish), decoder)
    assert last == [TextChunk("\ufffd"), Finish("length", 9, 3)]


def test_tls_options_need_cert_and_key_together() -> None:
    from pathlib import Path

    from sentiric_inference.client import TLSOptions

    with pytest.raises(ValueError, match="cert_file and key_file"):
        TLSOptions(cert_file=Path("client.crt"))
