"""POST /tokenize and /detokenize (llama-server's shapes) on a real server, and bad input to
each refused with a 400 naming the field."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.integration.http.conftest import TINY, client_for
from tests.support.server import ServerHandle

pytestmark = pytest.mark.model


def _post(server: ServerHandle, path: str, body: Any) -> httpx.Response:
    if isinstance(body, bytes):  # JSON that Python's encoder would not write (a lone surrogate)
        headers = {"content-type": "application/json"}
        return httpx.post(server.http_url + path, content=body, headers=headers, timeout=30)
    return httpx.post(server.http_url + path, json=body, timeout=30)


def test_tokenize_counts_what_a_completion_prompt_costs(tiny_server: ServerHandle) -> None:
    text = "The quick brown fox jumps over the lazy dog."
    tokens = _post(tiny_server, "/tokenize", {"content": text}).json()["tokens"]
    assert tokens and all(isinstance(t, int) for t in tokens)
    with_bos = _post(tiny_server, "/tokenize", {"content": text, "add_special": True}).json()
    # /v1/completions tokenizes its prompt with the model's BOS when the model wants one.
    completion = client_for(tiny_server).completions.create(model=TINY, prompt=text, max_tokens=1)
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == len(with_bos["tokens"])


def test_detokenize_gives_the_text_back(tiny_server: ServerHandle) -> None:
    text = "Hello, world! Grüße 🌍"
    tokens = _post(tiny_server, "/tokenize", {"content": text}).json()["tokens"]
    back = _post(tiny_server, "/detokenize", {"tokens": tokens})
    assert back.status_code == 200
    assert back.json() == {"content": text}
    assert _post(tiny_server, "/detokenize", {"tokens": []}).json() == {"content": ""}


def test_with_pieces_gives_each_tokens_text_or_bytes(tiny_server: ServerHandle) -> None:
    text = "abc 🌍"
    body = _post(tiny_server, "/tokenize", {"content": text, "with_pieces": True}).json()
    pieces = body["tokens"]
    assert all(set(p) == {"id", "piece"} for p in pieces)
    rebuilt = b"".join(
        p["piece"].encode() if isinstance(p["piece"], str) else bytes(p["piece"]) for p in pieces
    )
    assert rebuilt.decode() == text
    ids = _post(tiny_server, "/tokenize", {"content": text}).json()["tokens"]
    assert [p["id"] for p in pieces] == ids


def test_control_token_text_is_plain_text_unless_asked(tiny_server: ServerHandle) -> None:
    text = "<|im_end|>"
    plain = _post(tiny_server, "/tokenize", {"content": text}).json()["tokens"]
    special = _post(tiny_server, "/tokenize", {"content": text, "parse_special": True}).json()
    # As a chat message would be tokenized: several ordinary tokens, not the control token.
    assert len(special["tokens"]) == 1
    assert len(plain) > 1 and special["tokens"][0] not in plain


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/tokenize", {}, "content"),
        ("/tokenize", {"content": 5}, "content"),
        ("/tokenize", {"content": "x", "add_special": "yes"}, "add_special"),
        ("/tokenize", {"content": "x", "with_piece": True}, "with_piece"),
        ("/tokenize", {"content": "x" * 20_000}, "content"),
        ("/tokenize", b'{"content": "\\ud800"}', "content"),
        ("/tokenize", [1, 2], None),
        ("/detokenize", {}, "tokens"),
        ("/detokenize", {"tokens": "1 2"}, "tokens"),
        ("/detokenize", {"tokens": [1, "2"]}, "tokens[1]"),
        ("/detokenize", {"tokens": [1, True]}, "tokens[1]"),
        ("/detokenize", {"tokens": [1, 2.5]}, "tokens[1]"),
        ("/detokenize", {"tokens": [0, 1, 10_000_000]}, "tokens[2]"),
        ("/detokenize", {"tokens": [-1]}, "tokens[0]"),
        ("/detokenize", {"tokens": [1] * 20_000}, "tokens"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(
    tiny_server: ServerHandle, path: str, body: Any, param: str | None
) -> None:
    response = _post(tiny_server, path, body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param, error
    assert len(error["message"]) <= 1000


def test_a_wrong_method_or_a_non_json_body_is_refused(tiny_server: ServerHandle) -> None:
    assert httpx.get(tiny_server.http_url + "/tokenize", timeout=10).status_code == 405
    response = httpx.post(
        tiny_server.http_url + "/detokenize",
        content=b"tokens=1",
        headers={"content-type": "text/plain"},
        timeout=10,
    )
    assert response.status_code == 400
