"""API keys on gRPC: LlamaService needs `authorization: Bearer <key>` metadata (UNAUTHENTICATED
without), health and reflection stay open, the client and `generate` CLI send the key."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sentiric_inference.client import AsyncLlamaClient, GenerationOptions, LlamaClient
from sentiric_inference.grpc_api.gen import llama_pb2, llama_pb2_grpc

from tests.integration.auth.conftest import KEYS, metric
from tests.support.server import ServerHandle

pytestmark = pytest.mark.model

OPTIONS = GenerationOptions(max_new_tokens=4)


@pytest.mark.parametrize(
    "metadata",
    [
        (),
        (("authorization", "Bearer not-a-key-0123456789abc"),),
        (("authorization", KEYS["billing"]),),  # no "Bearer " scheme
    ],
)
def test_llama_service_without_a_valid_key_is_unauthenticated(
    auth_server: ServerHandle, metadata: tuple[tuple[str, str], ...]
) -> None:
    def failures() -> float:
        return sum(
            metric(auth_server, "sentiric_llm_auth_failures_total", api="grpc", reason=reason)
            for reason in ("missing", "invalid")
        )

    before = failures()
    with grpc.insecure_channel(auth_server.grpc_target) as channel:
        stub = llama_pb2_grpc.LlamaServiceStub(channel)
        call = stub.GenerateStream(
            llama_pb2.GenerateStreamRequest(user_prompt="hi"), metadata=metadata, timeout=30
        )
        with pytest.raises(grpc.RpcError) as info:
            list(call)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
    assert "not-a-key" not in (info.value.details() or "")  # type: ignore[attr-defined]
    assert failures() == before + 1


def test_the_clients_send_the_key(auth_server: ServerHandle) -> None:
    with LlamaClient(auth_server.grpc_target, api_key=KEYS["billing"]) as client:
        done = client.generate("hi", options=OPTIONS, timeout=60)
    assert done.finish.reason in ("stop", "length")

    async def run() -> str:
        async with AsyncLlamaClient(auth_server.grpc_target, api_key=KEYS["search"]) as client:
            result = await client.generate("hi", options=OPTIONS, timeout=60)
            return result.finish.reason

    assert asyncio.run(run()) in ("stop", "length")
    with LlamaClient(auth_server.grpc_target) as client, pytest.raises(grpc.RpcError) as info:
        client.generate("hi", options=OPTIONS, timeout=60)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
    assert (
        metric(auth_server, "sentiric_llm_auth_failures_total", api="grpc", reason="missing") >= 1
    )
    assert metric(auth_server, "sentiric_llm_key_requests_total", key="billing") >= 1


def test_health_stays_open(auth_server: ServerHandle) -> None:
    with grpc.insecure_channel(auth_server.grpc_target) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="sentiric.llm.v1.LlamaService"), timeout=10
        )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_generate_cli_reads_the_key_from_the_environment(auth_server: ServerHandle) -> None:
    command = [
        sys.executable,
        "-m",
        "sentiric_inference",
        "generate",
        "hi",
        "--target",
        auth_server.grpc_target,
        "--max-tokens",
        "4",
        "--timeout",
        "60",
    ]
    env = {k: v for k, v in os.environ.items() if k != "SENTIRIC_API_KEY"}
    refused = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0 and "UNAUTHENTICATED" in refused.stderr
    served = subprocess.run(
        command,
        env={**env, "SENTIRIC_API_KEY": KEYS["billing"]},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert served.returncode == 0, served.stderr
    assert "finish_reason=" in served.stderr
    flag = subprocess.run(
        [*command, "--api-key", KEYS["search"]],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert flag.returncode == 0, flag.stderr
