"""gRPC and HTTP requests share the engine: their tokens are decoded in the same steps."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from openai import AsyncOpenAI
from prometheus_client.parser import text_string_to_metric_families
from sentiric_inference.client import AsyncLlamaClient, GenerationOptions

from tests.support.server import ServerHandle

pytestmark = pytest.mark.model

TOKENS = 96
# The HTTP stream runs far longer, so the gRPC stream (started once HTTP text flows) is
# generated entirely while the HTTP one still is, however the clients are scheduled.
HTTP_TOKENS = 2000


async def _counters(client: httpx.AsyncClient, url: str) -> dict[str, float]:
    text = (await client.get(url)).text
    wanted = {"sentiric_llm_decode_steps_total", "sentiric_llm_generated_tokens_total"}
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name in wanted
    }


async def test_grpc_and_http_streams_are_batched_together(tiny_server: ServerHandle) -> None:
    async with (
        httpx.AsyncClient(timeout=10) as http,
        AsyncLlamaClient(tiny_server.grpc_target) as llama,
        AsyncOpenAI(
            base_url=tiny_server.openai_base_url, api_key="unused", max_retries=0
        ) as openai,
    ):
        model = (await openai.models.list()).data[0].id
        before = await _counters(http, tiny_server.metrics_url)

        # The gRPC call starts once the HTTP stream is generating, so the two overlap for
        # most of their tokens however slowly the openai client sets up its request.
        http_generating = asyncio.Event()

        async def grpc_stream() -> int:
            await asyncio.wait_for(http_generating.wait(), timeout=60)
            done = await llama.generate(
                "Write a long story.",
                options=GenerationOptions(temperature=0.0, max_new_tokens=TOKENS),
                timeout=120,
            )
            assert done.finish.reason == "length"
            return done.finish.completion_tokens

        async def http_stream() -> int:
            stream = await openai.chat.completions.create(
                model=model,
                messages=[{"role": "user", "content": "Write a long poem."}],
                temperature=0.0,
                max_tokens=HTTP_TOKENS,
                stream=True,
                stream_options={"include_usage": True},
            )
            tokens = 0
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    http_generating.set()
                if chunk.usage is not None:
                    tokens = chunk.usage.completion_tokens
            return tokens

        grpc_tokens, http_tokens = await asyncio.gather(grpc_stream(), http_stream())
        after = await _counters(http, tiny_server.metrics_url)

    assert grpc_tokens == TOKENS and http_tokens == HTTP_TOKENS
    steps = after["sentiric_llm_decode_steps_total"] - before["sentiric_llm_decode_steps_total"]
    generated = (
        after["sentiric_llm_generated_tokens_total"] - before["sentiric_llm_generated_tokens_total"]
    )
    assert generated == TOKENS + HTTP_TOKENS
    # One stream at a time needs a llama_decode per generated token; every step shared by
    # both streams saves one, so the savings count the gRPC tokens decoded beside HTTP ones.
    shared = generated - steps
    assert shared >= 0.75 * TOKENS, (steps, generated)
