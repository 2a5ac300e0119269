"""Refusals (INVALID_ARGUMENT, RESOURCE_EXHAUSTED), cancellation and deadlines, on a real server."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf.struct_pb2 import Struct
from prometheus_client.parser import text_string_to_metric_families
from sentiric_inference.client import AsyncLlamaClient, GenerationOptions, TextChunk
from sentiric_inference.grpc_api.gen import llama_pb2, llama_pb2_grpc

from tests.support.server import ServerHandle, running_server

pytestmark = pytest.mark.model

LIMIT = 4096  # the tiny server's sampling.maxTokens (conftest.TINY_MAX_TOKENS)


def metric(server: ServerHandle, name: str, **labels: str) -> float:
    """One sample's value from the server's /metrics (0 when absent)."""
    text = httpx.get(server.metrics_url, timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def wait_for(predicate: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def _request(user_prompt: str = "Hi", **params: Any) -> llama_pb2.GenerateStreamRequest:
    engine = params.pop("engine", None)
    request = llama_pb2.GenerateStreamRequest(user_prompt=user_prompt)
    request.params.SetInParent()
    for key, value in params.items():
        if key == "stop_sequences":
            request.params.stop_sequences.extend(value)
        else:
            setattr(request.params, key, value)
    if engine is not None:
        struct = Struct()
        struct.update(engine)
        request.params.engine_specific_params.CopyFrom(struct)
    return request


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (_request(""), "user_prompt"),
        (_request(temperature=-0.1), "temperature"),
        (_request(top_p=0.0), "top_p"),
        (_request(top_p=1.5), "top_p"),
        (_request(max_new_tokens=0), "max_new_tokens"),
        (_request(max_new_tokens=LIMIT + 1), "max_new_tokens"),
        (_request(engine={"mirostat_tau": 5}), "mirostat_tau"),
        (_request(engine={"min_p": 7}), "engine_specific_params.min_p"),
        # The tiny server gives each sequence 8192 tokens of context.
        (_request("word " * 20_000), "user_prompt"),
    ],
    ids=[
        "empty-prompt",
        "negative-temperature",
        "top-p-zero",
        "top-p-above-one",
        "zero-max-tokens",
        "max-tokens-above-limit",
        "unknown-engine-param",
        "min-p-range",
        "prompt-too-long",
    ],
)
async def test_invalid_arguments_are_named(
    tiny_server: ServerHandle, request_: llama_pb2.GenerateStreamRequest, field: str
) -> None:
    async with grpc.aio.insecure_channel(tiny_server.grpc_target) as channel:
        stub = llama_pb2_grpc.LlamaServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            [r async for r in stub.GenerateStream(request_, timeout=30)]
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in (info.value.details() or "")
        # The server keeps serving after the refusal.
        ok = [r async for r in stub.GenerateStream(_request(max_new_tokens=2), timeout=30)]
    assert ok[-1].finish_details.finish_reason == "length"


async def test_cancelled_stream_frees_its_sequence(tiny_server: ServerHandle) -> None:
    before = metric(tiny_server, "sentiric_llm_requests_total", api="grpc", outcome="cancelled")
    async with AsyncLlamaClient(tiny_server.grpc_target) as client:
        stream = client.stream("Go on forever.", options=GenerationOptions(max_new_tokens=LIMIT))
        async for event in stream:
            assert isinstance(event, TextChunk)
            break
        await stream.aclose()  # cancels the RPC
    wait_for(
        lambda: (
            metric(tiny_server, "sentiric_llm_requests_total", api="grpc", outcome="cancelled")
            == before + 1
        )
    )
    wait_for(lambda: metric(tiny_server, "sentiric_llm_sequences_active") == 0)
    # Generation really stopped: the token counter no longer moves.
    generated = metric(tiny_server, "sentiric_llm_generated_tokens_total")
    await asyncio.sleep(0.5)
    assert metric(tiny_server, "sentiric_llm_generated_tokens_total") == generated


async def test_expired_deadline_frees_its_sequence(tiny_server: ServerHandle) -> None:
    before = metric(tiny_server, "sentiric_llm_requests_total", api="grpc", outcome="cancelled")
    async with AsyncLlamaClient(tiny_server.grpc_target) as client:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await client.generate(
                "Go on forever.", options=GenerationOptions(max_new_tokens=LIMIT), timeout=0.5
            )
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        wait_for(
            lambda: (
                metric(tiny_server, "sentiric_llm_requests_total", api="grpc", outcome="cancelled")
                == before + 1
            )
        )
        wait_for(lambda: metric(tiny_server, "sentiric_llm_sequences_active") == 0)
        done = await client.generate("Still there?", options=GenerationOptions(max_new_tokens=3))
    assert done.finish.reason == "length"


def test_overload_is_resource_exhausted_and_others_are_served(tiny_model_path: Path) -> None:
    # One sequence and no queue: a second concurrent request cannot be admitted.
    with running_server(
        tiny_model_path,
        parallel=1,
        max_queue=0,
        extra_config={"sampling": {"maxTokens": LIMIT}},
    ) as server:

        async def scenario() -> None:
            async with AsyncLlamaClient(server.grpc_target) as client:
                busy = client.stream(
                    "Long answer.", options=GenerationOptions(max_new_tokens=LIMIT)
                )
                first = await anext(busy)
                assert isinstance(first, TextChunk)
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await client.generate("Me too.", options=GenerationOptions(max_new_tokens=2))
                assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                trailing = dict(info.value.trailing_metadata() or ())
                assert float(trailing["retry-after"]) > 0
                await busy.aclose()
                # Once the sequence is free again the next request is served.
                for _ in range(50):
                    try:
                        done = await client.generate(
                            "Now?", options=GenerationOptions(max_new_tokens=2)
                        )
                    except grpc.aio.AioRpcError as exc:
                        assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                        await asyncio.sleep(0.1)
                        continue
                    assert done.finish.reason == "length"
                    return
                raise AssertionError("the freed sequence was never reused")

        asyncio.run(scenario())
        assert metric(server, "sentiric_llm_requests_total", api="grpc", outcome="overloaded") >= 1


async def test_trace_id_is_in_the_request_log_lines(tiny_server: ServerHandle) -> None:
    trace = f"trace-{time.monotonic_ns()}"
    async with AsyncLlamaClient(tiny_server.grpc_target) as client:
        await client.generate("Hi", options=GenerationOptions(max_new_tokens=2), trace_id=trace)
    # The servicer logs "finished" after the last message has left, so the client can read the
    # log before that line is written; wait for it (bounded) rather than race the server.
    wanted = {"GenerateStream started", "GenerateStream finished"}
    deadline = time.monotonic() + 10.0
    while True:
        lines = [json.loads(line) for line in tiny_server.log_text().splitlines() if trace in line]
        messages = {entry["message"] for entry in lines}
        if wanted <= messages or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert lines, "no log line carries the x-trace-id"
    assert all(entry["trace_id"] == trace for entry in lines)
    assert wanted <= messages
