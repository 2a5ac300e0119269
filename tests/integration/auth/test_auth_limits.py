"""Per-key limits on a real server: 429 + Retry-After naming the limit for the key that is
over it, RESOURCE_EXHAUSTED on gRPC, while other keys are still served."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import httpx
import openai
import pytest
from sentiric_inference.client import GenerationOptions, LlamaClient

from tests.integration.auth.conftest import (
    KEYS,
    REQUESTS_PER_MINUTE,
    TINY,
    TOKENS_PER_MINUTE,
    metric,
    openai_client,
    write_keys,
)
from tests.support.server import ServerHandle, running_server

pytestmark = pytest.mark.model

CHAT = {"model": TINY, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


def test_requests_per_minute_refuses_that_key_only(limited_server: ServerHandle) -> None:
    client = openai_client(limited_server, KEYS["rpm"])
    for _ in range(REQUESTS_PER_MINUTE):
        client.chat.completions.create(**CHAT)
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(**CHAT)
    response = info.value.response
    assert response.status_code == 429
    assert 1 <= int(response.headers["retry-after"]) <= 60
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("rate_limit_error", "rate_limit_exceeded")
    assert "requestsPerMinute" in error["message"] and "'rpm'" in error["message"]
    # Another key is served meanwhile.
    other = openai_client(limited_server, KEYS["rpm-other"])
    assert other.chat.completions.create(**CHAT).choices[0].finish_reason in ("stop", "length")
    assert (
        metric(
            limited_server,
            "sentiric_llm_key_rejections_total",
            key="rpm",
            limit="requests_per_minute",
        )
        == 1
    )
    assert (
        metric(
            limited_server, "sentiric_llm_requests_total", api="http_chat", outcome="rate_limited"
        )
        >= 1
    )


def test_tokens_per_minute_counts_what_a_request_used(limited_server: ServerHandle) -> None:
    client = openai_client(limited_server, KEYS["tpm"])
    # One request may start under the limit and use more than it ...
    prompt = "counting words " * 150
    first = client.completions.create(model=TINY, prompt=prompt, max_tokens=1)
    assert first.usage is not None and first.usage.total_tokens > TOKENS_PER_MINUTE
    # ... then the key waits until those tokens leave the 60 s window.
    with pytest.raises(openai.RateLimitError) as info:
        client.completions.create(model=TINY, prompt="x", max_tokens=1)
    assert "tokensPerMinute" in info.value.response.json()["error"]["message"]
    assert 1 <= int(info.value.response.headers["retry-after"]) <= 60
    tokens = metric(limited_server, "sentiric_llm_key_tokens_total", key="tpm", kind="prompt")
    assert tokens == first.usage.prompt_tokens


def test_grpc_rate_limit_is_resource_exhausted_naming_the_limit(
    limited_server: ServerHandle,
) -> None:
    options = GenerationOptions(max_new_tokens=2)
    with LlamaClient(limited_server.grpc_target, api_key=KEYS["grpc-rpm"]) as client:
        for _ in range(REQUESTS_PER_MINUTE):
            assert client.generate("hi", options=options, timeout=60).finish.reason
        with pytest.raises(grpc.RpcError) as info:
            client.generate("hi", options=options, timeout=60)
    error = info.value
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
    assert "requestsPerMinute" in error.details()  # type: ignore[attr-defined]
    trailers = dict(error.trailing_metadata() or ())  # type: ignore[attr-defined]
    assert 1 <= float(trailers["retry-after"]) <= 60


def test_max_concurrent_refuses_a_burst_beyond_it_and_others_are_served(
    smollm2_path: Path, tmp_path: Path
) -> None:
    keys = tmp_path / "keys"
    write_keys(keys, ["burst", "calm"])
    auth = {"apiKeysFile": str(keys), "perKey": {"maxConcurrent": 2}}
    with running_server(
        smollm2_path,
        parallel=1,
        context_size=1024,
        extra_config={
            "model": {"alias": "smol"},
            "sampling": {"maxTokens": 96},
            "server": {"auth": auth},
        },
    ) as server:

        async def one(key: str) -> int:
            async with httpx.AsyncClient(timeout=120) as http:
                response = await http.post(
                    server.openai_base_url + "/completions",
                    headers={"Authorization": f"Bearer {key}"},
                    json={
                        "model": "smol",
                        "prompt": "Write a long story about the sea.",
                        "max_tokens": 96,
                        "temperature": 0,
                    },
                )
                if response.status_code == 429:
                    assert "maxConcurrent" in response.json()["error"]["message"]
                return response.status_code

        async def run() -> tuple[list[int], int]:
            burst = [asyncio.create_task(one(KEYS["burst"])) for _ in range(5)]
            # The burst is admitted (two of it) before the calm key's single request.
            await asyncio.sleep(0.3)
            calm = await one(KEYS["calm"])
            return list(await asyncio.gather(*burst)), calm

        burst, calm = asyncio.run(asyncio.wait_for(run(), 300))
        # Each request takes seconds on one sequence: five at once cannot all be in flight.
        assert sorted(burst) == [200, 200, 429, 429, 429], burst
        assert calm == 200
        assert (
            metric(server, "sentiric_llm_key_rejections_total", key="burst", limit="max_concurrent")
            == 3
        )
