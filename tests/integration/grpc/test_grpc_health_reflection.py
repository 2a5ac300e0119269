"""grpc.health.v1 transitions and server reflection, on real server processes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from sentiric_inference.grpc_api.gen import llama_pb2, llama_pb2_grpc
from sentiric_inference.grpc_api.server import SERVICE_NAME

from tests.support.server import ServerHandle, running_server

pytestmark = pytest.mark.model

# Retry a refused connection every 50 ms (gRPC's default backoff starts at 1 s), so the
# first status is seen while the model is still loading.
FAST_RECONNECT = (
    ("grpc.initial_reconnect_backoff_ms", 50),
    ("grpc.min_reconnect_backoff_ms", 50),
    ("grpc.max_reconnect_backoff_ms", 100),
)
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def test_health_is_serving_for_the_server_and_the_service(tiny_server: ServerHandle) -> None:
    with grpc.insecure_channel(tiny_server.grpc_target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", SERVICE_NAME):
            # Health follows readiness within one 50 ms poll of /ready turning 200.
            deadline = time.monotonic() + 2
            while True:
                reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
                if reply.status == SERVING or time.monotonic() > deadline:
                    break
                time.sleep(0.02)
            assert reply.status == SERVING, service
        with pytest.raises(grpc.RpcError) as info:
            health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=10)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]


def _watch_statuses(target: str, service: str, deadline: float) -> Iterator[int]:
    """Health Watch updates, reconnecting until the server's port accepts (bounded)."""
    while time.monotonic() < deadline:
        with grpc.insecure_channel(target, options=FAST_RECONNECT) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            try:
                for reply in stub.Watch(
                    health_pb2.HealthCheckRequest(service=service),
                    timeout=max(deadline - time.monotonic(), 0.1),
                    wait_for_ready=True,
                ):
                    yield reply.status
                return
            except grpc.RpcError as exc:
                if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:  # type: ignore[attr-defined]
                    return
                time.sleep(0.05)


def test_health_goes_from_not_serving_to_serving_while_loading(smollm2_path: Path) -> None:
    # SmolLM2 takes long enough to load that the gRPC port answers before the model is ready.
    with running_server(smollm2_path, wait=False) as server:
        seen: list[int] = []
        for status in _watch_statuses(server.grpc_target, SERVICE_NAME, time.monotonic() + 90):
            seen.append(status)
            if status == SERVING:
                break
        assert seen[-1] == SERVING, seen
        assert seen[0] == NOT_SERVING, seen
        assert set(seen) <= {NOT_SERVING, SERVING}
        server.wait_ready(timeout=30)


def test_unavailable_while_loading(smollm2_path: Path) -> None:
    request = llama_pb2.GenerateStreamRequest(
        user_prompt="Hi", params=llama_pb2.GenerationParams(max_new_tokens=1)
    )
    with (
        running_server(smollm2_path, wait=False) as server,
        grpc.insecure_channel(server.grpc_target, options=FAST_RECONNECT) as channel,
    ):
        stub = llama_pb2_grpc.LlamaServiceStub(channel)
        # wait_for_ready: the call goes out the moment the port accepts, while the model
        # is still loading in the server's background thread.
        with pytest.raises(grpc.RpcError) as info:
            list(stub.GenerateStream(request, timeout=90, wait_for_ready=True))
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
        assert "not ready" in info.value.details()  # type: ignore[attr-defined]
        server.wait_ready(timeout=60)
        # Once loaded, the same channel is served.
        replies = list(stub.GenerateStream(request, timeout=60))
    assert replies[-1].finish_details.finish_reason in ("length", "stop")


def test_reflection_lists_and_describes_the_service(tiny_server: ServerHandle) -> None:
    with grpc.insecure_channel(tiny_server.grpc_target) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        services = set(database.get_services())
        assert {SERVICE_NAME, "grpc.health.v1.Health"} <= services
        proto = database.FindFileContainingSymbol(SERVICE_NAME)
    assert proto.package == "sentiric.llm.v1"
    methods = {m.name: m for s in proto.service for m in s.method}
    assert methods["GenerateStream"].server_streaming
    assert methods["GenerateStream"].output_type == ".sentiric.llm.v1.GenerateStreamResponse"
