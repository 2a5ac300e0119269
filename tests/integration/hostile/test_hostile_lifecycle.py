"""Shutdown and overload under hostile timing: the last gRPC message, Retry-After advice."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import grpc
import httpx
import pytest
from sentiric_inference.grpc_api.gen import llama_pb2, llama_pb2_grpc

from tests.integration.hostile.conftest import TALLY
from tests.support.hostile import REFUSED, SERVED
from tests.support.server import running_server

pytestmark = pytest.mark.model


def test_grpc_streams_get_finish_details_when_the_grace_period_runs_out(
    tiny_model_path: Path,
) -> None:
    # 7. with a short grace, streams ended UNAVAILABLE "Cancelling all calls", no last message.
    with running_server(
        tiny_model_path,
        parallel=2,
        context_size=8192,
        extra_config={"sampling": {"maxTokens": 8000}},
        args=["--shutdown-grace", "1"],
    ) as server:
        with grpc.insecure_channel(server.grpc_target) as channel:
            stub = llama_pb2_grpc.LlamaServiceStub(channel)
            request = llama_pb2.GenerateStreamRequest(user_prompt="Go on forever.")
            request.params.max_new_tokens = 8000
            stream = stub.GenerateStream(request, timeout=60)
            first = next(stream)
            assert first.HasField("token")
            os.kill(server.pid, signal.SIGTERM)
            replies = list(stream)
        assert replies, "the stream ended without a last message"
        assert replies[-1].HasField("finish_details"), replies[-1]
        assert replies[-1].finish_details.finish_reason == "cancelled"
        assert server.process.wait(timeout=30) == 0
    TALLY.add("gRPC stream past a 1 s shutdown grace", SERVED)


def test_retry_after_follows_the_measured_drain_rate(tiny_model_path: Path) -> None:
    # 7. Retry-After was 1 s even when the queue needed a minute.
    with running_server(
        tiny_model_path,
        parallel=1,
        max_queue=3,
        context_size=8192,
        extra_config={"sampling": {"maxTokens": 8000}},
    ) as server:
        url = f"{server.http_url}/v1/chat/completions"

        def body(tokens: int) -> dict[str, object]:
            return {
                "model": "x",
                "messages": [{"role": "user", "content": "go"}],
                "max_tokens": tokens,
            }

        model = httpx.get(f"{server.http_url}/v1/models", timeout=10).json()["data"][0]["id"]
        with httpx.Client(timeout=120) as client:
            # Requests long enough to take about a second each, one after another: the
            # engine drains about one request per second.
            # The size that took long enough is the one every later request uses: doubling
            # past it could pass maxTokens (8000) and be refused as too long.
            tokens, took = 64, 0.0
            while True:
                started = time.monotonic()
                reply = client.post(url, json={**body(tokens), "model": model})
                took = time.monotonic() - started
                assert reply.status_code == 200, reply.text
                if took >= 1.0 or tokens * 2 > 8000:
                    break
                tokens *= 2
            for _ in range(3):
                reply = client.post(url, json={**body(tokens), "model": model})
                assert reply.status_code == 200
            with httpx.Client(timeout=120) as filler:
                # One running and three waiting: the queue is full. Streamed, so each
                # response starts (and the request is queued) without waiting for the answer.
                streams = [
                    filler.stream(
                        "POST", url, json={**body(tokens), "model": model, "stream": True}
                    )
                    for _ in range(4)
                ]
                for stream in streams:
                    assert stream.__enter__().status_code == 200
                try:
                    deadline = time.monotonic() + 30
                    while True:
                        refused = client.post(url, json={**body(2), "model": model})
                        if refused.status_code == 429 or time.monotonic() > deadline:
                            break
                        time.sleep(0.1)
                    assert refused.status_code == 429, refused.text
                    retry = int(refused.headers["Retry-After"])
                finally:
                    for stream in streams:
                        stream.__exit__(None, None, None)
        # Four requests ahead at about one per second (or slower).
        assert retry >= 2, (retry, took)
    TALLY.add("Retry-After from the drain rate", REFUSED)
