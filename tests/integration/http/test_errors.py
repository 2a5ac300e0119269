"""Bad input always gets a 400 in OpenAI's error shape naming the field; the server keeps serving."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.integration.http.conftest import MAX_TOKENS, TINY
from tests.support.server import ServerHandle

pytestmark = pytest.mark.model

USER = [{"role": "user", "content": "hi"}]


def chat(**fields: Any) -> dict[str, Any]:
    return {"model": TINY, "messages": USER, "max_tokens": 2, **fields}


CHAT_CASES: list[tuple[str, dict[str, Any] | str, str | None]] = [
    ("malformed json", '{"model": "tiny", "messages": [', None),
    ("not an object", "[1, 2]", None),
    ("missing messages", {"model": TINY}, "messages"),
    ("missing model", {"messages": USER}, "model"),
    ("empty messages", chat(messages=[]), "messages"),
    ("unknown role", chat(messages=[{"role": "wizard", "content": "x"}]), "messages[0].role"),
    ("content wrong type", chat(messages=[{"role": "user", "content": 5}]), "messages[0].content"),
    ("empty user content", chat(messages=[{"role": "user", "content": ""}]), "messages[0].content"),
    (
        "last message not user",
        chat(messages=[*USER, {"role": "assistant", "content": "a"}]),
        "messages[1].role",
    ),
    ("temperature wrong type", chat(temperature="hot"), "temperature"),
    ("stream wrong type", chat(stream="yes"), "stream"),
    ("max_tokens as a string", chat(max_tokens="5"), "max_tokens"),
    ("temperature out of range", chat(temperature=5), "temperature"),
    ("top_p out of range", chat(top_p=0), "top_p"),
    ("max_tokens zero", chat(max_tokens=0), "max_tokens"),
    ("max_tokens above the profile", chat(max_tokens=MAX_TOKENS + 1), "max_tokens"),
    ("negative top_k", chat(top_k=-3), "top_k"),
    ("stop wrong type", chat(stop=[1]), "stop"),
    ("unknown parameter", chat(temprature=0.5), "temprature"),
    ("n > 1", chat(n=2), "n"),
    ("logprobs", chat(logprobs=True), "logprobs"),
    (
        "tool without a name",
        chat(tools=[{"type": "function", "function": {"description": "f"}}]),
        "tools[0].function.name",
    ),
    (
        "image content",
        chat(
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "http://x/y.png"}}],
                }
            ]
        ),
        "messages[0].content[0].type",
    ),
    ("bad response_format type", chat(response_format={"type": "yaml"}), "response_format.type"),
    (
        "invalid json schema",
        chat(
            response_format={
                "type": "json_schema",
                "json_schema": {
                    "name": "x",
                    "schema": {"type": "object", "properties": {"a": {"type": 7}}},
                },
            }
        ),
        "response_format.json_schema",
    ),
    ("prompt too long", chat(messages=[{"role": "user", "content": "word " * 3000}]), "messages"),
]


@pytest.mark.parametrize(("case", "body", "param"), CHAT_CASES, ids=[c[0] for c in CHAT_CASES])
def test_bad_chat_requests(
    tiny_server: ServerHandle, case: str, body: dict[str, Any] | str, param: str | None
) -> None:
    url = f"{tiny_server.openai_base_url}/chat/completions"
    if isinstance(body, str):
        response = httpx.post(
            url, content=body, headers={"content-type": "application/json"}, timeout=30
        )
    else:
        response = httpx.post(url, json=body, timeout=30)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert error["message"]
    if case == "prompt too long":
        assert error["code"] == "context_length_exceeded"


COMPLETION_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("token prompt", {"prompt": [1, 2, 3]}, "prompt"),
    ("echo", {"prompt": "x", "echo": True}, "echo"),
    ("empty prompt", {"prompt": ""}, "prompt"),
    ("frequency penalty", {"prompt": "x", "frequency_penalty": 9}, "frequency_penalty"),
]


@pytest.mark.parametrize(
    ("case", "body", "param"), COMPLETION_CASES, ids=[c[0] for c in COMPLETION_CASES]
)
def test_bad_completion_requests(
    tiny_server: ServerHandle, case: str, body: dict[str, Any], param: str
) -> None:
    response = httpx.post(
        f"{tiny_server.openai_base_url}/completions", json={"model": TINY, **body}, timeout=30
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_a_body_that_is_not_json_is_refused(tiny_server: ServerHandle) -> None:
    response = httpx.post(
        f"{tiny_server.openai_base_url}/chat/completions",
        content=b'{"model": "tiny", "messages": [{"role": "user", "content": "hi"}]}',
        headers={"content-type": "text/plain"},
        timeout=30,
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("invalid_request_error", "invalid_json")
    assert "application/json" in error["message"]


def test_unknown_model_is_404_naming_model(tiny_server: ServerHandle) -> None:
    response = httpx.post(
        f"{tiny_server.openai_base_url}/chat/completions", json=chat(model="gpt-4o"), timeout=30
    )
    assert response.status_code == 404
    error = response.json()["error"]
    assert (error["type"], error["param"], error["code"]) == (
        "not_found_error",
        "model",
        "model_not_found",
    )


def test_unknown_route_and_method_use_the_error_shape(tiny_server: ServerHandle) -> None:
    missing = httpx.get(f"{tiny_server.http_url}/v1/nothing", timeout=10)
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found_error"
    wrong = httpx.get(f"{tiny_server.openai_base_url}/chat/completions", timeout=10)
    assert wrong.status_code == 405 and "error" in wrong.json()


def test_openai_client_raises_bad_request_with_the_param(tiny_server: ServerHandle) -> None:
    import openai

    from tests.integration.http.conftest import client_for

    with pytest.raises(openai.BadRequestError) as info:
        client_for(tiny_server).chat.completions.create(model=TINY, messages=USER, n=3)
    assert info.value.param == "n"
    assert info.value.status_code == 400
