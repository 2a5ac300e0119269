"""The Ollama API (/api/*) driven by the official `ollama` Python client, unchanged, against a
real server: model listing, chat and generate (streamed and not, options, formats), embed."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import ollama
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.http.conftest import MAX_TOKENS, SMOL, TINY, client_for
from tests.support.server import ServerHandle, running_server

pytestmark = pytest.mark.model

SMOL_TAG = f"{SMOL}:latest"
USER = [{"role": "user", "content": "Name three colors."}]
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 20},
        "age": {"type": "integer"},
    },
    "required": ["name", "age"],
    "additionalProperties": False,
}


def client(server: ServerHandle, **kwargs: Any) -> ollama.Client:
    return ollama.Client(host=server.http_url, timeout=120, **kwargs)


def _durations_ok(reply: ollama.ChatResponse | ollama.GenerateResponse) -> None:
    assert reply.done is True
    assert reply.done_reason in ("stop", "length")
    assert reply.prompt_eval_count is not None and reply.prompt_eval_count > 0
    assert reply.eval_count is not None and reply.eval_count > 0
    assert reply.load_duration == 0
    for value in (reply.total_duration, reply.prompt_eval_duration, reply.eval_duration):
        assert isinstance(value, int) and value > 0
    assert reply.total_duration >= reply.prompt_eval_duration + reply.eval_duration  # type: ignore[operator]


def test_version_tags_ps_and_show_describe_the_one_model(smol_server: ServerHandle) -> None:
    api = client(smol_server)
    assert api._client.get("/api/version").json()["version"]
    listed = api.list().models
    assert [m.model for m in listed] == [SMOL_TAG]
    model = listed[0]
    assert model.size is not None and model.size > 50_000_000
    assert model.details is not None
    assert (model.details.family, model.details.parameter_size) == ("llama", "135M")
    assert model.details.quantization_level == "Q4_1"
    assert model.details.format == "gguf"
    assert model.digest and len(model.digest) == 64
    running = api.ps().models
    assert [m.model for m in running] == [SMOL_TAG]
    assert running[0].context_length == 1024
    for name in (SMOL, SMOL_TAG):
        shown = api.show(name)
        assert shown.modelinfo is not None
        assert shown.modelinfo["llama.embedding_length"] == 576
        assert shown.capabilities == ["completion", "embedding"]
        assert shown.parameters is not None and "num_predict" in shown.parameters
        assert shown.template and "im_start" in shown.template


def test_chat_streamed_and_not_give_the_same_text(smol_server: ServerHandle) -> None:
    api = client(smol_server)
    options = {"temperature": 0, "num_predict": 40, "seed": 7}
    whole = api.chat(model=SMOL, messages=USER, options=options)
    assert whole.message.role == "assistant"
    assert whole.message.content
    assert whole.model == SMOL
    _durations_ok(whole)
    chunks = list(api.chat(model=SMOL, messages=USER, options=options, stream=True))
    assert len(chunks) > 3
    assert all(not c.done for c in chunks[:-1])
    last = chunks[-1]
    _durations_ok(last)
    assert last.message.content == ""
    assert "".join(c.message.content or "" for c in chunks) == whole.message.content
    assert last.eval_count == whole.eval_count
    assert last.prompt_eval_count == whole.prompt_eval_count


def test_chat_counts_the_prompt_as_the_openai_route_does(smol_server: ServerHandle) -> None:
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
        *USER,
    ]
    reply = client(smol_server).chat(model=SMOL, messages=messages, options={"num_predict": 2})
    openai_reply = client_for(smol_server).chat.completions.create(
        model=SMOL,
        messages=messages,  # type: ignore[arg-type]
        max_tokens=2,
    )
    assert openai_reply.usage is not None
    assert reply.prompt_eval_count == openai_reply.usage.prompt_tokens


def test_generate_streamed_and_not_and_raw(smol_server: ServerHandle) -> None:
    api = client(smol_server)
    options = {"temperature": 0, "num_predict": 30}
    whole = api.generate(model=SMOL_TAG, prompt="Why is the sky blue?", options=options)
    assert whole.response
    _durations_ok(whole)
    streamed = list(
        api.generate(model=SMOL_TAG, prompt="Why is the sky blue?", options=options, stream=True)
    )
    assert "".join(c.response or "" for c in streamed) == whole.response
    _durations_ok(streamed[-1])
    # `system` goes in through the template, as an OpenAI system message does.
    with_system = api.generate(
        model=SMOL, prompt="Why is the sky blue?", system="Answer like a pirate.", options=options
    )
    as_openai = client_for(smol_server).chat.completions.create(
        model=SMOL,
        messages=[
            {"role": "system", "content": "Answer like a pirate."},
            {"role": "user", "content": "Why is the sky blue?"},
        ],
        max_tokens=1,
    )
    assert as_openai.usage is not None
    assert with_system.prompt_eval_count == as_openai.usage.prompt_tokens
    assert with_system.prompt_eval_count != whole.prompt_eval_count
    # raw: the prompt as it is, no template around it.
    raw = api.generate(model=SMOL, prompt="The capital of France is", raw=True, options=options)
    tokens = httpx.post(
        smol_server.http_url + "/tokenize",
        json={"content": "The capital of France is", "add_special": True},
        timeout=30,
    ).json()["tokens"]
    assert raw.prompt_eval_count == len(tokens)
    assert raw.response


def test_options_map_to_sampling(smol_server: ServerHandle) -> None:
    api = client(smol_server)
    short = api.generate(model=SMOL, prompt="Count to twenty.", options={"num_predict": 3})
    assert (short.eval_count, short.done_reason) == (3, "length")
    # The same seed gives the same text at a high temperature; another seed (almost surely)
    # another text.
    hot = {"temperature": 1.5, "top_k": 0, "top_p": 1.0, "min_p": 0.0, "num_predict": 24}
    one = api.generate(model=SMOL, prompt="Tell me a story.", options={**hot, "seed": 1})
    same = api.generate(model=SMOL, prompt="Tell me a story.", options={**hot, "seed": 1})
    other = api.generate(model=SMOL, prompt="Tell me a story.", options={**hot, "seed": 2})
    assert one.response == same.response
    assert one.response != other.response
    counting = {"temperature": 0, "num_predict": 8}
    free = api.generate(model=SMOL, prompt="1, 2, 3, 4, 5,", raw=True, options=counting)
    assert "," in (free.response or "")
    stopped = api.generate(
        model=SMOL, prompt="1, 2, 3, 4, 5,", raw=True, options={**counting, "stop": [","]}
    )
    assert stopped.response == (free.response or "").split(",")[0]
    assert stopped.done_reason == "stop"
    # -1 (until the model stops) is bounded by the profile's maxTokens.
    unbounded = api.generate(model=SMOL, prompt="Hi", options={"num_predict": -1})
    assert unbounded.eval_count is not None and unbounded.eval_count <= MAX_TOKENS
    # Loading options are the profile's; they are accepted and do not change it.
    loaded = api.generate(
        model=SMOL, prompt="Hi", options={"num_ctx": 32768, "num_gpu": 99, "num_predict": 2}
    )
    assert loaded.eval_count == 2


def test_format_json_and_schema_give_valid_output(smol_server: ServerHandle) -> None:
    api = client(smol_server)
    as_json = api.chat(
        model=SMOL,
        # A prompt SmolLM2 answers with a short object at temperature 0 (with others it
        # nests objects until num_predict; the grammar only keeps the text JSON).
        messages=[{"role": "user", "content": 'Return JSON: {"ok": true}'}],
        format="json",
        options={"temperature": 0, "num_predict": MAX_TOKENS},
    )
    assert as_json.done_reason == "stop"
    assert isinstance(json.loads(as_json.message.content or ""), dict)
    prompt = "Invent a person with a name and an age."
    by_schema = api.generate(
        model=SMOL, prompt=prompt, format=SCHEMA, options={"num_predict": MAX_TOKENS}
    )
    jsonschema.validate(json.loads(by_schema.response or ""), SCHEMA)
    streamed = api.chat(
        model=SMOL,
        messages=[{"role": "user", "content": prompt}],
        format=SCHEMA,
        stream=True,
        options={"num_predict": MAX_TOKENS},
    )
    text = "".join(chunk.message.content or "" for chunk in streamed)
    jsonschema.validate(json.loads(text), SCHEMA)


def test_a_request_with_nothing_to_generate_loads_the_model(smol_server: ServerHandle) -> None:
    api = client(smol_server)
    loaded = api.generate(model=SMOL)
    assert (loaded.done, loaded.done_reason, loaded.response) == (True, "load", "")
    chat = api.chat(model=SMOL, messages=[])
    assert (chat.done, chat.done_reason) == (True, "load")
    assert api.embed(model=SMOL, input=[]).embeddings == []


def test_embed_gives_the_openai_routes_vectors(smol_server: ServerHandle) -> None:
    api = client(smol_server)
    texts = ["first text to embed", "second, rather different text"]
    reply = api.embed(model=SMOL, input=texts)
    assert reply.model == SMOL
    assert len(reply.embeddings) == 2
    assert all(len(vector) == 576 for vector in reply.embeddings)
    assert reply.prompt_eval_count is not None and reply.prompt_eval_count > 0
    openai_reply = client_for(smol_server).embeddings.create(
        model=SMOL, input=texts, encoding_format="float"
    )
    assert [list(v) for v in reply.embeddings] == [d.embedding for d in openai_reply.data]
    single = api.embed(model=SMOL, input=texts[0])
    assert [list(v) for v in single.embeddings] == [
        client_for(smol_server)
        .embeddings.create(model=SMOL, input=texts[0], encoding_format="float")
        .data[0]
        .embedding
    ]
    legacy = api.embeddings(model=SMOL, prompt=texts[0])
    assert list(legacy.embedding) == list(single.embeddings[0])
    # Ollama cuts over-long inputs to the context by default; truncate=False refuses them.
    long = "word " * 2000
    cut = api.embed(model=SMOL, input=long)
    assert cut.prompt_eval_count == 512
    with pytest.raises(ollama.ResponseError) as refused:
        api.embed(model=SMOL, input=["ok", long], truncate=False)
    assert refused.value.status_code == 400
    assert "input[1]" in refused.value.error


def _raw(server: ServerHandle, method: str, path: str, body: Any) -> httpx.Response:
    if isinstance(body, bytes):
        headers = {"content-type": "application/json"}
        return httpx.request(
            method, server.http_url + path, content=body, headers=headers, timeout=60
        )
    return httpx.request(method, server.http_url + path, json=body, timeout=60)


def _chat(**fields: Any) -> dict[str, Any]:
    return {"model": SMOL, "messages": USER, "stream": False, **fields}


def _gen(**fields: Any) -> dict[str, Any]:
    return {"model": SMOL, "prompt": "hi", "stream": False, **fields}


BAD: list[tuple[str, str, Any, int, str]] = [
    ("/api/chat", "not json", b'{"model": ', 400, "JSON"),
    ("/api/chat", "missing model", {"messages": USER}, 400, "'model'"),
    ("/api/chat", "unknown model", _chat(model="llama3"), 404, "'llama3'"),
    ("/api/chat", "unknown field", _chat(temprature=1), 400, "temprature"),
    ("/api/chat", "unknown option", _chat(options={"temprature": 1}), 400, "options.temprature"),
    ("/api/chat", "option type", _chat(options={"temperature": "hot"}), 400, "options.temperature"),
    ("/api/chat", "option range", _chat(options={"temperature": 9}), 400, "options.temperature"),
    ("/api/chat", "num_predict", _chat(options={"num_predict": 10**6}), 400, "options.num_predict"),
    ("/api/chat", "top_k", _chat(options={"top_k": -5}), 400, "options.top_k"),
    ("/api/chat", "repeat_last_n", _chat(options={"repeat_last_n": -9}), 400, "repeat_last_n"),
    ("/api/chat", "mirostat", _chat(options={"mirostat": 2}), 400, "options.mirostat"),
    ("/api/chat", "stop type", _chat(options={"stop": [1]}), 400, "options.stop"),
    ("/api/chat", "stream type", _chat(stream="yes"), 400, "stream"),
    ("/api/chat", "format string", _chat(format="yaml"), 400, "format"),
    ("/api/chat", "format schema", _chat(format={"type": "nonsense"}), 400, "format"),
    ("/api/chat", "role", _chat(messages=[{"role": "wizard", "content": "x"}]), 400, "role"),
    (
        "/api/chat",
        "last role",
        _chat(messages=[*USER, {"role": "assistant", "content": "a"}]),
        400,
        "messages[1].role",
    ),
    (
        "/api/chat",
        "images",
        _chat(messages=[{"role": "user", "content": "x", "images": ["aGk="]}]),
        400,
        "messages[0].images",
    ),
    ("/api/chat", "tools", _chat(tools=[{"type": "function"}]), 400, "tools"),
    ("/api/chat", "think", _chat(think=True), 400, "think"),
    ("/api/chat", "empty content", _chat(messages=[{"role": "user"}]), 400, "messages[0]"),
    (
        "/api/chat",
        "surrogate",
        b'{"model":"smollm2","messages":[{"role":"user","content":"\\ud800"}]}',
        400,
        "messages[0].content",
    ),
    ("/api/generate", "template", _gen(template="{{ .Prompt }}"), 400, "template"),
    ("/api/generate", "suffix", _gen(suffix="end"), 400, "suffix"),
    ("/api/generate", "context", _gen(context=[1, 2]), 400, "context"),
    ("/api/generate", "images", _gen(images=["aGk="]), 400, "images"),
    ("/api/generate", "raw with system", _gen(raw=True, system="s"), 400, "system"),
    ("/api/generate", "prompt type", _gen(prompt=5), 400, "prompt"),
    ("/api/generate", "tfs_z", _gen(options={"tfs_z": 0.5}), 400, "options.tfs_z"),
    ("/api/embed", "input type", {"model": SMOL, "input": 5}, 400, "input"),
    ("/api/embed", "empty input", {"model": SMOL, "input": ["a", ""]}, 400, "input[1]"),
    ("/api/embed", "too many", {"model": SMOL, "input": ["a"] * 257}, 400, "maxEmbeddingInputs"),
    ("/api/embed", "dimensions", {"model": SMOL, "input": "a", "dimensions": 8}, 400, "dimensions"),
    ("/api/embed", "unknown model", {"model": "x", "input": "a"}, 404, "'x'"),
    ("/api/embeddings", "prompt type", {"model": SMOL, "prompt": [1]}, 400, "prompt"),
    ("/api/embeddings", "too long", {"model": SMOL, "prompt": "w " * 5000}, 400, "prompt"),
    ("/api/show", "unknown model", {"model": "x"}, 404, "'x'"),
    ("/api/show", "no model", {}, 400, "model"),
    ("/api/pull", "pull", {"model": "llama3"}, 501, "profile"),
    ("/api/nope", "unknown route", {}, 404, "Not Found"),
]


@pytest.mark.parametrize(
    ("path", "body", "status", "named"),
    [pytest.param(p, b, s, n, id=f"{p} {label}") for p, label, b, s, n in BAD],
)
def test_bad_input_is_refused_in_ollamas_shape(
    smol_server: ServerHandle, path: str, body: Any, status: int, named: str
) -> None:
    response = _raw(smol_server, "POST", path, body)
    assert response.status_code == status, response.text
    error = response.json()
    assert set(error) == {"error"}, error
    assert isinstance(error["error"], str)
    assert named in error["error"], error


def test_the_client_raises_response_errors_with_the_message(smol_server: ServerHandle) -> None:
    api = client(smol_server)
    with pytest.raises(ollama.ResponseError) as missing:
        api.chat(model="llama3", messages=USER)
    assert missing.value.status_code == 404
    assert "llama3" in missing.value.error
    with pytest.raises(ollama.ResponseError) as bad:
        list(api.chat(model=SMOL, messages=USER, stream=True, options={"top_p": 0}))
    assert bad.value.status_code == 400
    assert "options.top_p" in bad.value.error


PROFILE_SYSTEM = "You are the shop's assistant. Answer in JSON."
PROFILE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"answer": {"type": "string", "maxLength": 8}},
    "required": ["answer"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def profile_server(tiny_model_path: Path) -> Iterator[ServerHandle]:
    """A profile with a system prompt and a default output schema."""
    with running_server(
        tiny_model_path,
        parallel=2,
        context_size=1024,
        extra_config={
            "model": {"alias": TINY},
            "sampling": {"maxTokens": 200, "temperature": 0.0},
            "prompt": {"system": PROFILE_SYSTEM, "responseFormat": PROFILE_SCHEMA},
        },
    ) as handle:
        yield handle


def test_the_profiles_system_prompt_and_schema_apply(profile_server: ServerHandle) -> None:
    api = client(profile_server)
    reply = api.chat(model=TINY, messages=[{"role": "user", "content": "hello"}])
    jsonschema.validate(json.loads(reply.message.content or ""), PROFILE_SCHEMA)
    generated = api.generate(model=TINY, prompt="hello", stream=True)
    text = "".join(chunk.response or "" for chunk in generated)
    jsonschema.validate(json.loads(text), PROFILE_SCHEMA)
    # The same prompt as the OpenAI route renders it, profile system prompt included.
    openai_reply = client_for(profile_server).chat.completions.create(
        model=TINY, messages=[{"role": "user", "content": "hello"}], max_tokens=2
    )
    assert openai_reply.usage is not None
    assert reply.prompt_eval_count == openai_reply.usage.prompt_tokens
    system_tokens = httpx.post(
        profile_server.http_url + "/tokenize", json={"content": PROFILE_SYSTEM}, timeout=30
    ).json()["tokens"]
    assert reply.prompt_eval_count is not None
    assert reply.prompt_eval_count > len(system_tokens)
    # The request's own format wins over the profile's.
    free = api.chat(
        model=TINY,
        messages=[{"role": "user", "content": "hello"}],
        format=SCHEMA,
        options={"num_predict": 200},
    )
    jsonschema.validate(json.loads(free.message.content or ""), SCHEMA)


def _metric(server: ServerHandle, name: str, **labels: str) -> float:
    text = httpx.get(server.metrics_url, timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def test_a_client_leaving_a_stream_cancels_its_generation(smol_server: ServerHandle) -> None:
    labels = {"api": "ollama_chat", "outcome": "cancelled"}
    before = _metric(smol_server, "sentiric_llm_requests_total", **labels)
    body = {
        "model": SMOL,
        "messages": [{"role": "user", "content": "Write a very long story."}],
        "options": {"num_predict": MAX_TOKENS, "temperature": 0},
    }
    with (
        httpx.Client(timeout=60) as http,
        http.stream("POST", smol_server.http_url + "/api/chat", json=body) as response,
    ):
        assert response.headers["content-type"] == "application/x-ndjson"
        lines = response.iter_lines()
        first = [json.loads(next(lines)) for _ in range(3)]
    assert all(not chunk["done"] for chunk in first)
    deadline = time.monotonic() + 30
    while _metric(smol_server, "sentiric_llm_requests_total", **labels) < before + 1:
        assert time.monotonic() < deadline, "the generation was not cancelled"
        time.sleep(0.1)
