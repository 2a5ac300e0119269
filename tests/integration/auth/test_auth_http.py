"""API keys on HTTP: the openai client with a key is served, without one it gets 401 in
OpenAI's shape; probes stay open; keys rotate without a restart; metrics name keys only."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import openai
import pytest

from tests.integration.auth.conftest import (
    BARE_KEY,
    KEYS,
    TINY,
    metric,
    openai_client,
    wait_for,
    write_keys,
)
from tests.support.server import ServerHandle

pytestmark = pytest.mark.model

CHAT = {"model": TINY, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


def test_the_openai_client_with_a_key_is_served(auth_server: ServerHandle) -> None:
    client = openai_client(auth_server, KEYS["billing"])
    assert [m.id for m in client.models.list().data] == [TINY]
    chat = client.chat.completions.create(
        model=TINY, messages=[{"role": "user", "content": "hi"}], max_tokens=4
    )
    assert chat.choices[0].finish_reason in ("stop", "length")
    chunks = list(client.completions.create(model=TINY, prompt="Once", max_tokens=4, stream=True))
    assert chunks and chunks[-1].choices[0].finish_reason in ("stop", "length")
    # A key listed without a name works too.
    bare = openai_client(auth_server, BARE_KEY)
    assert bare.chat.completions.create(**CHAT).usage is not None


# "unused" is what a client written for an open server sends; the client refuses to send none
# (the routes test below sends none with httpx).
@pytest.mark.parametrize("key", ["unused", "not-a-key-0123456789abcdef", KEYS["billing"] + "x"])
def test_a_wrong_key_is_refused_by_the_openai_client(auth_server: ServerHandle, key: str) -> None:
    client = openai_client(auth_server, key)
    with pytest.raises(openai.AuthenticationError) as info:
        client.chat.completions.create(**CHAT)
    assert info.value.status_code == 401
    assert info.value.code == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        client.models.list()


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/chat/completions", CHAT),
        ("POST", "/v1/completions", {"model": TINY, "prompt": "x", "max_tokens": 2}),
        ("GET", "/v1/models", None),
        ("POST", "/tokenize", {"content": "hello"}),
        ("POST", "/detokenize", {"tokens": [1, 2]}),
        ("GET", "/no/such/route", None),
    ],
)
@pytest.mark.parametrize("authorization", [None, "Bearer wrong-key-0123456789abcd", "Basic x"])
def test_every_api_route_answers_401_in_openais_shape(
    auth_server: ServerHandle,
    method: str,
    path: str,
    body: dict[str, object] | None,
    authorization: str | None,
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = httpx.request(
        method, auth_server.http_url + path, json=body, headers=headers, timeout=30
    )
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["code"], error["param"]) == (
        "invalid_request_error",
        "invalid_api_key",
        None,
    )
    assert "wrong-key" not in response.text


def test_probes_and_metrics_stay_open(auth_server: ServerHandle) -> None:
    for path in ("/health", "/ready", "/metrics"):
        assert httpx.get(auth_server.http_url + path, timeout=10).status_code == 200


def test_metrics_count_per_key_name_and_never_show_a_key(auth_server: ServerHandle) -> None:
    client = openai_client(auth_server, KEYS["search"])
    before = metric(auth_server, "sentiric_llm_key_requests_total", key="search")
    reply = client.chat.completions.create(**CHAT)
    assert reply.usage is not None
    wait_for(
        lambda: metric(auth_server, "sentiric_llm_key_requests_total", key="search") == before + 1
    )
    prompt = metric(auth_server, "sentiric_llm_key_tokens_total", key="search", kind="prompt")
    assert prompt >= reply.usage.prompt_tokens
    httpx.post(auth_server.http_url + "/v1/chat/completions", json=CHAT, timeout=30)
    assert metric(auth_server, "sentiric_llm_auth_failures_total", api="http", reason="missing") > 0
    text = httpx.get(auth_server.metrics_url, timeout=10).text
    assert all(key not in text for key in (*KEYS.values(), BARE_KEY))


def test_keys_never_reach_the_log(auth_server: ServerHandle) -> None:
    openai_client(auth_server, KEYS["billing"]).chat.completions.create(**CHAT)
    with pytest.raises(openai.AuthenticationError):
        openai_client(auth_server, "leaked-looking-key-0123456789").chat.completions.create(**CHAT)
    log = auth_server.log_text()
    assert "leaked-looking-key" not in log
    assert all(key not in log for key in (*KEYS.values(), BARE_KEY))
    # The key's name is what identifies the caller in the access lines.
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert any(line.get("api_key") == "billing" for line in lines)


def test_a_rotated_key_file_is_taken_without_a_restart(
    auth_server: ServerHandle, key_file: Path
) -> None:
    old = openai_client(auth_server, KEYS["billing"])
    new = openai_client(auth_server, KEYS["rotated"])
    original = key_file.read_text()
    try:
        write_keys(key_file, ["rotated", "search", "rpm", "rpm-other", "tpm", "grpc-rpm"])

        def rotated() -> bool:
            try:
                new.models.list()
            except openai.AuthenticationError:
                return False
            return True

        wait_for(rotated, timeout=10)
        with pytest.raises(openai.AuthenticationError):
            old.models.list()
        # A broken file keeps the keys loaded last.
        key_file.with_suffix(".tmp").write_text("too-short\n")
        key_file.with_suffix(".tmp").replace(key_file)

        def refused_broken_file() -> bool:
            # The check runs on a request; the keys loaded last keep working meanwhile.
            assert new.models.list().data[0].id == TINY
            return "was not loaded" in auth_server.log_text()

        wait_for(refused_broken_file, timeout=10)
    finally:
        tmp = key_file.with_suffix(".tmp")
        tmp.write_text(original)
        tmp.replace(key_file)
    wait_for(lambda: _served(old), timeout=10)


def _served(client: openai.OpenAI) -> bool:
    try:
        client.models.list()
    except openai.AuthenticationError:
        return False
    return True


def test_the_banner_asks_for_a_key(auth_server: ServerHandle) -> None:
    assert 'api_key="<a key from the API key file>"' in auth_server.log_text()
