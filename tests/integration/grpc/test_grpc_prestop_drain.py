"""A pod's exit, step by step, against a real server process with a stream in flight.

The kubelet runs the operator's preStop hook (the same command, aimed at this process
instead of the container's PID 1), waits for it, then sends SIGTERM. Throughout, the
stream keeps going; readiness says 503 from the hook on; new calls are still served
until SIGTERM closes the listeners; the process exits 0 once the stream finished.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sentiric_inference.client import Finish, GenerationOptions, LlamaClient
from sentiric_inference.grpc_api.server import SERVICE_NAME
from sentiric_operator.builders.deployment import prestop_command

from tests.support.server import running_server, stop_process

pytestmark = pytest.mark.model

DRAIN_DELAY_S = 1


def test_prestop_drain_then_sigterm_lets_the_stream_finish(tiny_model_path: Path) -> None:
    with running_server(
        tiny_model_path,
        parallel=2,
        context_size=8192,
        extra_config={"sampling": {"maxTokens": 7500}},
        args=["--shutdown-grace", "20"],
    ) as server:
        with LlamaClient(server.grpc_target) as client, httpx.Client(timeout=10) as http:
            stream = client.stream(
                "Tell me a long story.",
                options=GenerationOptions(temperature=0.0, max_new_tokens=7000),
                timeout=60,
            )
            next(stream)  # in flight
            hook = subprocess.Popen(prestop_command(DRAIN_DELAY_S, pid=server.pid))
            try:
                deadline = time.monotonic() + 5
                while http.get(f"{server.http_url}/ready").status_code != 503:
                    assert time.monotonic() < deadline, "readiness never turned 503"
                    time.sleep(0.05)
                ready = http.get(f"{server.http_url}/ready")
                assert ready.json()["reason"].startswith("draining")
                with grpc.insecure_channel(server.grpc_target) as channel:
                    health = health_pb2_grpc.HealthStub(channel)
                    deadline = time.monotonic() + 2
                    while True:
                        status = health.Check(
                            health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=5
                        ).status
                        if status == health_pb2.HealthCheckResponse.NOT_SERVING:
                            break
                        assert time.monotonic() < deadline, "gRPC health stayed SERVING"
                        time.sleep(0.05)
                # Not ready, yet serving: a call routed here from a stale endpoint list works.
                late = client.generate(
                    "Hi", options=GenerationOptions(max_new_tokens=2), timeout=30
                )
                assert late.finish.reason == "length"
                assert hook.wait(timeout=DRAIN_DELAY_S + 5) == 0
            finally:
                if hook.poll() is None:
                    hook.kill()
                    hook.wait()
            assert server.process.poll() is None  # the hook drains; it does not stop
            server.process.send_signal(signal.SIGTERM)  # the kubelet, after the hook
            events = list(stream)
            assert isinstance(events[-1], Finish) and events[-1].reason == "length"
            assert events[-1].completion_tokens == 7000
        assert stop_process(server.process, timeout=25) == 0
        log = server.log_text()
        assert log.index("draining: not ready") < log.index("shutting down")
        # The long stream was still running when SIGTERM came, and ended after it.
        assert log.index("shutting down") < log.index('"completion_tokens": 7000')
