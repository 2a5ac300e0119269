"""API keys and per-key limits on the Ollama API (/api/*) and /v1/embeddings, with the official
`ollama` and `openai` clients against real servers."""

from __future__ import annotations

from typing import Any

import httpx
import ollama
import openai
import pytest

from tests.integration.auth.conftest import (
    KEYS,
    REQUESTS_PER_MINUTE,
    TINY,
    metric,
    openai_client,
)
from tests.support.server import ServerHandle

pytestmark = pytest.mark.model

USER = [{"role": "user", "content": "hi"}]


def ollama_client(server: ServerHandle, key: str | None) -> ollama.Client:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else None
    return ollama.Client(host=server.http_url, headers=headers, timeout=120)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/version", None),
        ("GET", "/api/tags", None),
        ("GET", "/api/ps", None),
        ("POST", "/api/show", {"model": TINY}),
        ("POST", "/api/chat", {"model": TINY, "messages": USER}),
        ("POST", "/api/generate", {"model": TINY, "prompt": "hi"}),
        ("POST", "/api/embed", {"model": TINY, "input": "hi"}),
        ("POST", "/api/embeddings", {"model": TINY, "prompt": "hi"}),
        ("POST", "/api/pull", {"model": TINY}),
    ],
)
@pytest.mark.parametrize("authorization", [None, "Bearer wrong-key-0123456789abcd"])
def test_every_ollama_route_answers_401_in_ollamas_shape(
    auth_server: ServerHandle,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    authorization: str | None,
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = httpx.request(
        method, auth_server.http_url + path, json=body, headers=headers, timeout=30
    )
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    error = response.json()
    assert set(error) == {"error"} and isinstance(error["error"], str)
    assert "wrong-key" not in response.text


def test_embeddings_need_a_key_in_openais_shape(auth_server: ServerHandle) -> None:
    response = httpx.post(
        auth_server.http_url + "/v1/embeddings", json={"model": TINY, "input": "hi"}, timeout=30
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        openai_client(auth_server, "wrong-key-0123456789abcd").embeddings.create(
            model=TINY, input="hi"
        )
    served = openai_client(auth_server, KEYS["billing"]).embeddings.create(
        model=TINY, input=["hi", "there"]
    )
    assert len(served.data) == 2


def test_the_ollama_client_with_a_key_is_served_and_without_refused(
    auth_server: ServerHandle,
) -> None:
    with pytest.raises(ollama.ResponseError) as refused:
        ollama_client(auth_server, None).chat(model=TINY, messages=USER)
    assert refused.value.status_code == 401
    api = ollama_client(auth_server, KEYS["search"])
    reply = api.chat(model=TINY, messages=USER, options={"num_predict": 3})
    assert reply.done and reply.eval_count is not None and reply.eval_count <= 3
    streamed = list(api.generate(model=TINY, prompt="hi", stream=True, options={"num_predict": 3}))
    assert streamed[-1].done
    assert len(api.embed(model=TINY, input=["a", "b"]).embeddings) == 2
    assert [m.model for m in api.list().models] == [f"{TINY}:latest"]
    before = metric(auth_server, "sentiric_llm_key_requests_total", key="search", outcome="ok")
    api.embed(model=TINY, input="counted")
    after = metric(auth_server, "sentiric_llm_key_requests_total", key="search", outcome="ok")
    assert after == before + 1


def test_per_key_limits_apply_to_ollama_chat(limited_server: ServerHandle) -> None:
    api = ollama_client(limited_server, KEYS["ollama-rpm"])
    for _ in range(REQUESTS_PER_MINUTE):
        api.chat(model=TINY, messages=USER, options={"num_predict": 2})
    with pytest.raises(ollama.ResponseError) as limited:
        api.chat(model=TINY, messages=USER, options={"num_predict": 2})
    assert limited.value.status_code == 429
    assert "requestsPerMinute" in limited.value.error
    assert (
        metric(
            limited_server,
            "sentiric_llm_requests_total",
            api="ollama_chat",
            outcome="rate_limited",
        )
        >= 1
    )


def test_per_key_limits_apply_to_embeddings(limited_server: ServerHandle) -> None:
    client = openai_client(limited_server, KEYS["embed-rpm"])
    for _ in range(REQUESTS_PER_MINUTE):
        client.embeddings.create(model=TINY, input="hi")
    with pytest.raises(openai.RateLimitError) as limited:
        client.embeddings.create(model=TINY, input="hi")
    response = limited.value.response
    assert 1 <= int(response.headers["retry-after"]) <= 60
    assert "requestsPerMinute" in response.json()["error"]["message"]
    # Embedded tokens count against the key's tokensPerMinute like a prompt's.
    assert metric(limited_server, "sentiric_llm_key_tokens_total", key="embed-rpm") > 0
    assert (
        metric(
            limited_server,
            "sentiric_llm_requests_total",
            api="http_embeddings",
            outcome="rate_limited",
        )
        == 1
    )
