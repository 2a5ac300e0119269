"""POST /v1/embeddings with the official openai client on a real server (SmolLM2), bad input
refused with a 400 naming the field, embeddings switched off answered with a 501, and an
embedding request beside a streaming generation does not stall it."""

from __future__ import annotations

import base64
import itertools
import math
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import ollama
import openai
import pytest

from tests.integration.http.conftest import SMOL, TINY, client_for
from tests.support.server import ServerHandle, running_server

pytestmark = pytest.mark.model

SMOL_DIMENSIONS = 576  # llama.embedding_length of SmolLM2-135M


def _post(server: ServerHandle, body: Any) -> httpx.Response:
    if isinstance(body, bytes):
        headers = {"content-type": "application/json"}
        return httpx.post(
            server.http_url + "/v1/embeddings", content=body, headers=headers, timeout=60
        )
    return httpx.post(server.http_url + "/v1/embeddings", json=body, timeout=60)


def _norm(vector: list[float]) -> float:
    return math.sqrt(math.fsum(x * x for x in vector))


def _cosine(a: list[float], b: list[float]) -> float:
    return math.fsum(x * y for x, y in zip(a, b, strict=True)) / (_norm(a) * _norm(b))


def test_the_openai_client_gets_unit_vectors_with_usage(smol_server: ServerHandle) -> None:
    texts = ["The cat sat on the mat.", "Quarterly revenue grew by twelve percent."]
    reply = client_for(smol_server).embeddings.create(
        model=SMOL, input=texts, encoding_format="float"
    )
    assert reply.object == "list"
    assert reply.model == SMOL
    assert [d.index for d in reply.data] == [0, 1]
    for item in reply.data:
        assert item.object == "embedding"
        assert len(item.embedding) == SMOL_DIMENSIONS
        assert _norm(item.embedding) == pytest.approx(1.0, abs=1e-4)
    assert reply.data[0].embedding != reply.data[1].embedding
    tokenized = [
        httpx.post(
            smol_server.http_url + "/tokenize",
            json={"content": text, "add_special": True},
            timeout=30,
        ).json()["tokens"]
        for text in texts
    ]
    assert reply.usage.prompt_tokens == sum(map(len, tokenized))
    assert reply.usage.total_tokens == reply.usage.prompt_tokens


def test_the_same_input_gives_the_same_vector_alone_or_in_a_batch(
    smol_server: ServerHandle,
) -> None:
    client = client_for(smol_server)
    text = "Kubernetes operators reconcile desired state."
    alone = client.embeddings.create(model=SMOL, input=text).data[0].embedding
    again = client.embeddings.create(model=SMOL, input=text).data[0].embedding
    assert again == alone
    others = [f"filler sentence number {i} about something else entirely" for i in range(7)]
    batch = client.embeddings.create(model=SMOL, input=[*others[:3], text, *others[3:]])
    in_batch = batch.data[3].embedding
    # Packed with others, the decode's matrix shapes differ, and llama.cpp's kernels sum in
    # another order (quantized weights): equal to rounding, not bit for bit.
    assert max(abs(x - y) for x, y in zip(alone, in_batch, strict=True)) < 1e-2
    assert _cosine(alone, in_batch) > 0.9999
    # The same batch again is bit for bit the same.
    repeat = client.embeddings.create(model=SMOL, input=[*others[:3], text, *others[3:]])
    assert [d.embedding for d in repeat.data] == [d.embedding for d in batch.data]


def test_base64_is_little_endian_float32_of_the_same_vector(smol_server: ServerHandle) -> None:
    text = "base64 encoding check"
    client = client_for(smol_server)
    floats = client.embeddings.create(model=SMOL, input=text, encoding_format="float")
    vector = floats.data[0].embedding
    # Without encoding_format the openai client asks for base64 and decodes it itself.
    by_default = client.embeddings.create(model=SMOL, input=text).data[0].embedding
    assert len(by_default) == SMOL_DIMENSIONS
    assert by_default == pytest.approx(vector, abs=1e-6)
    # Asked for explicitly, the client hands the text over as the server sent it.
    explicit = client.embeddings.create(model=SMOL, input=text, encoding_format="base64")
    encoded = explicit.data[0].embedding
    assert isinstance(encoded, str)
    data = base64.b64decode(encoded)
    assert len(data) == 4 * SMOL_DIMENSIONS
    assert list(struct.unpack(f"<{SMOL_DIMENSIONS}f", data)) == pytest.approx(vector, abs=1e-6)


def test_token_id_inputs_equal_their_text(smol_server: ServerHandle) -> None:
    text = "token ids in, vector out"
    tokens = httpx.post(
        smol_server.http_url + "/tokenize",
        json={"content": text, "add_special": True},
        timeout=30,
    ).json()["tokens"]
    client = client_for(smol_server)
    by_text = client.embeddings.create(model=SMOL, input=text).data[0].embedding
    by_ids = client.embeddings.create(model=SMOL, input=tokens).data[0].embedding
    assert by_ids == by_text
    two = client.embeddings.create(model=SMOL, input=[tokens, tokens])
    assert len(two.data) == 2
    for item in two.data:  # packed into one decode: equal to rounding (see above)
        assert _cosine(item.embedding, by_text) > 0.9999


def test_the_model_card_and_health_report_embeddings(smol_server: ServerHandle) -> None:
    card = httpx.get(smol_server.http_url + "/v1/models", timeout=10).json()["data"][0]
    assert card["embeddings_enabled"] is True
    assert card["embeddings"]["dimensions"] == SMOL_DIMENSIONS
    assert card["embeddings"]["max_input_tokens"] == 512
    health = httpx.get(smol_server.http_url + "/health", timeout=10).json()
    assert health["embeddings"] == {"enabled": True, "dimensions": SMOL_DIMENSIONS}


LONG = "word " * 600  # more tokens than the embedding context's 512


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "x"}, "model"),
        ({"model": SMOL}, "input"),
        ({"model": SMOL, "input": 5}, "input"),
        ({"model": SMOL, "input": ""}, "input"),
        ({"model": SMOL, "input": []}, "input"),
        ({"model": SMOL, "input": ["ok", "", "ok"]}, "input[1]"),
        ({"model": SMOL, "input": ["ok", 3]}, "input"),
        ({"model": SMOL, "input": ["ok", "ok", "ok", LONG]}, "input[3]"),
        ({"model": SMOL, "input": LONG}, "input"),
        ({"model": SMOL, "input": [[1, 2], [-1]]}, "input[1]"),
        ({"model": SMOL, "input": [[1, 2], [10**9]]}, "input[1]"),
        ({"model": SMOL, "input": [1] * 513}, "input"),
        ({"model": SMOL, "input": ["ok"] * 257}, "input"),
        # 200 x 100 characters: beyond maxPromptChars (16 x the 1024-token context) in all.
        ({"model": SMOL, "input": ["x" * 100] * 200}, "input"),
        ({"model": SMOL, "input": "x", "encoding_format": "hex"}, "encoding_format"),
        ({"model": SMOL, "input": "x", "dimensions": 64}, "dimensions"),
        ({"model": SMOL, "input": "x", "dimensions": "576"}, "dimensions"),
        ({"model": SMOL, "input": "x", "extra": 1}, "extra"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(
    smol_server: ServerHandle, body: dict[str, Any], param: str
) -> None:
    response = _post(smol_server, body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param, error
    assert error["type"] == "invalid_request_error"


def test_a_lone_surrogate_and_an_unknown_model_are_refused(smol_server: ServerHandle) -> None:
    response = _post(smol_server, b'{"model": "smollm2", "input": ["ok", "a\\ud800b"]}')
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "input[1]"
    unknown = _post(smol_server, {"model": "gpt-4", "input": "x"})
    assert unknown.status_code == 404
    assert unknown.json()["error"]["param"] == "model"


@pytest.fixture(scope="module")
def embeddings_off_server(tiny_model_path: Path) -> Iterator[ServerHandle]:
    with running_server(
        tiny_model_path,
        parallel=1,
        context_size=512,
        extra_config={"model": {"alias": TINY}, "engine": {"embeddings": False}},
    ) as handle:
        yield handle


def test_embeddings_off_is_a_501_and_reported(embeddings_off_server: ServerHandle) -> None:
    client = client_for(embeddings_off_server)
    with pytest.raises(openai.APIStatusError) as caught:
        client.embeddings.create(model=TINY, input="x")
    assert caught.value.status_code == 501
    assert "engine.embeddings" in caught.value.message
    url = embeddings_off_server.http_url
    card = httpx.get(url + "/v1/models", timeout=10).json()["data"][0]
    assert (card["embeddings_enabled"], card["embeddings"]) == (False, None)
    health = httpx.get(url + "/health", timeout=10).json()
    assert health["embeddings"] == {"enabled": False, "dimensions": None}
    # The Ollama routes say the same in Ollama's shape, and /api/show leaves the capability out.
    api = ollama.Client(host=url, timeout=60)
    for call in (
        lambda: api.embed(model=TINY, input="x"),
        lambda: api.embed(model=TINY, input=[]),
        lambda: api.embeddings(model=TINY, prompt="x"),
    ):
        with pytest.raises(ollama.ResponseError) as off:
            call()
        assert off.value.status_code == 501
        assert "engine.embeddings" in off.value.error
    assert api.show(TINY).capabilities == ["completion"]
    # Generation is unaffected.
    reply = client.chat.completions.create(
        model=TINY, messages=[{"role": "user", "content": "hi"}], max_tokens=2
    )
    assert reply.choices[0].finish_reason in ("stop", "length")


def test_embedding_requests_do_not_stall_a_streaming_generation(
    smol_server: ServerHandle,
) -> None:
    """Tokens keep arriving while large embedding requests are served beside the stream."""
    client = client_for(smol_server)
    arrivals: list[float] = []
    embedding_windows: list[tuple[float, float]] = []
    stop = threading.Event()
    batch = [f"sentence {i}: " + "an embedding input of some length " * 12 for i in range(32)]

    def embed_until_stopped() -> None:
        # Bounded: at most 20 requests, and never past the stream's end.
        for _ in range(20):
            if stop.is_set():
                return
            began = time.monotonic()
            client.embeddings.create(model=SMOL, input=batch)
            embedding_windows.append((began, time.monotonic()))

    stream = client.chat.completions.create(
        model=SMOL,
        messages=[{"role": "user", "content": "Write a long story about a lighthouse keeper."}],
        max_tokens=160,
        temperature=0,
        stream=True,
    )
    embedder = threading.Thread(target=embed_until_stopped)
    try:
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                arrivals.append(time.monotonic())
                if len(arrivals) == 5:
                    embedder.start()
    finally:
        stop.set()
        if embedder.is_alive():
            embedder.join(timeout=120)
    assert not embedder.is_alive()
    assert len(arrivals) > 40
    assert embedding_windows, "no embedding request finished while the reply streamed"
    during = [t for t in arrivals if any(began <= t <= ended for began, ended in embedding_windows)]
    # Generation went on while embeddings were computed, with no long pause in it. A stream
    # that waited for an embedding request would pause as long as the request took; the
    # bound scales with that, since other work on a shared machine slows both alike.
    assert during, "no token arrived while an embedding request was in flight"
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    longest = max(ended - began for began, ended in embedding_windows)
    assert max(gaps) < max(5.0, longest / 2), (max(gaps), longest)
