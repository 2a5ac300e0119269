"""Readiness, metrics, overload (429), client disconnects and graceful shutdown."""

from __future__ import annotations

import json
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionMessageParam

from tests.integration.http.conftest import SMOL, TINY, client_for
from tests.support.server import ServerHandle, running_server

pytestmark = pytest.mark.model

ONE_SLOT = {"model": {"alias": TINY}, "sampling": {"maxTokens": 4000}}


def metric(server: ServerHandle, name: str, labels: str = "") -> float:
    """One sample from /metrics (0 when absent)."""
    text = httpx.get(server.metrics_url, timeout=10).text
    pattern = re.compile(rf"^{re.escape(name)}{re.escape(labels)} ([0-9.e+-]+)$", re.MULTILINE)
    match = pattern.search(text)
    return float(match.group(1)) if match else 0.0


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def ready_answer(server: ServerHandle) -> tuple[int, dict[str, str]] | None:
    """/ready's status and body, or None while nothing listens yet (the process must run)."""
    try:
        response = httpx.get(f"{server.http_url}/ready", timeout=5)
    except httpx.TransportError:
        assert server.process.poll() is None, server.log_text()
        return None
    return response.status_code, response.json()


def ready_answers(
    server: ServerHandle,
    timeout: float,
    on_not_ready: Callable[[dict[str, str]], None] | None = None,
) -> list[tuple[int, dict[str, str]]]:
    """Poll /ready until it says 200 (bounded): every answer, in order."""
    seen: list[tuple[int, dict[str, str]]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = ready_answer(server)
        if answer is not None:
            seen.append(answer)
            if answer[0] == 200:
                return seen
            if on_not_ready is not None:
                on_not_ready(answer[1])
        time.sleep(0.01)
    raise AssertionError(f"/ready did not say 200 within {timeout:.0f}s: {seen[-3:]}")


def long_stream_request(server: ServerHandle) -> httpx.Request:
    return httpx.Request(
        "POST",
        f"{server.openai_base_url}/chat/completions",
        json={
            "model": TINY,
            "stream": True,
            "max_tokens": 3900,
            "temperature": 1.0,
            "seed": 3,
            "messages": [{"role": "user", "content": "Tell me everything."}],
        },
    )


def test_ready_is_503_with_a_reason_until_the_model_loads(smollm2_path: Path) -> None:
    with running_server(smollm2_path, wait=False) as server:
        seen = ready_answers(server, 120)
        assert httpx.get(f"{server.http_url}/health", timeout=5).status_code == 200
        assert seen[-1][0] == 200
        not_ready = [body for status, body in seen if status == 503]
        assert not_ready, "the model loaded before the first /ready answer; no 503 observed"
        assert not_ready[0]["status"] == "not_ready" and "load" in not_ready[0]["reason"]
        health = httpx.get(f"{server.http_url}/health", timeout=5).json()
        assert health["status"] == "healthy" and health["model_ready"] is True


def test_health_reports_capacity_while_requests_run(tiny_model_path: Path) -> None:
    # One slot: a long stream takes it and a second waits; /health says so, and stays fast.
    with (
        running_server(
            tiny_model_path, parallel=1, max_queue=4, context_size=4096, extra_config=ONE_SLOT
        ) as server,
        httpx.Client(timeout=60) as http,
    ):
        idle = http.get(f"{server.http_url}/health").json()
        assert idle["status"] == "healthy" and idle["model_ready"] is True
        assert idle["capacity"] | {"kv_cells_used": 0} == {
            "slots_total": 1,
            "slots_free": 1,
            "active": 0,
            "queued": 0,
            "kv_cells_used": 0,
            "kv_cells_total": 4096,
        }
        streams = [http.send(long_stream_request(server), stream=True) for _ in range(2)]
        try:
            busy: dict[str, int] = {}
            for _ in range(200):  # bounded: ~10 s
                started = time.monotonic()
                busy = http.get(f"{server.http_url}/health").json()["capacity"]
                assert time.monotonic() - started < 1.0
                # KV cells count once the first prompt chunk is decoded, a step after admission.
                if busy["active"] == 1 and busy["queued"] == 1 and busy["kv_cells_used"] > 0:
                    break
                time.sleep(0.05)
            assert (busy["slots_free"], busy["active"], busy["queued"]) == (0, 1, 1), busy
            assert busy["kv_cells_used"] > 0
        finally:
            for response in streams:
                response.close()


# About 600 tokens: long enough that evaluating it takes a visible while on a CPU.
PROFILE_SYSTEM = "You are the phone assistant of Acme Tools. " + " ".join(
    f"Rule {i}: when a caller asks about product line {i}, cite section {i}.{i % 7} of the manual."
    for i in range(1, 41)
)


def cached_tokens(reply: ChatCompletion) -> int:
    assert reply.usage is not None and reply.usage.prompt_tokens_details is not None
    return reply.usage.prompt_tokens_details.cached_tokens or 0


def test_the_profile_system_prompt_is_evaluated_before_ready(smollm2_path: Path) -> None:
    config = {"model": {"alias": SMOL}, "prompt": {"system": PROFILE_SYSTEM}}
    with running_server(smollm2_path, wait=False, extra_config=config) as server:
        client = client_for(server)
        question: list[ChatCompletionMessageParam] = [
            {"role": "user", "content": "What does rule 3 say?"}
        ]
        during: list[ChatCompletion] = []

        def ask_while_warming(body: dict[str, str]) -> None:
            if not during and "system prompt" in body["reason"]:
                # Not ready for traffic, but a request that arrives anyway is served: it
                # waits for the same prefill and reuses it.
                during.append(
                    client.chat.completions.create(model=SMOL, max_tokens=4, messages=question)
                )

        seen = ready_answers(server, 180, on_not_ready=ask_while_warming)
        reasons = [body["reason"] for status, body in seen if status == 503]
        assert seen[-1][0] == 200, reasons
        assert any("system prompt" in reason for reason in reasons), reasons
        assert during and during[0].choices[0].finish_reason in ("stop", "length")
        before = metric(server, "sentiric_llm_prefix_cache_tokens_total")
        first = client.chat.completions.create(model=SMOL, max_tokens=4, messages=question)
        assert first.usage is not None
        # Everything up to the user's words came from the cache (>= 600 system tokens).
        opening = cached_tokens(first)
        assert opening >= 600 and first.usage.prompt_tokens - opening < 16, first.usage
        assert cached_tokens(during[0]) >= opening - 16
        assert metric(server, "sentiric_llm_prefix_cache_tokens_total") - before == opening
        assert "evaluated the profile's system prompt ahead" in server.log_text()


def test_a_profile_system_prompt_too_long_to_evaluate_ahead_still_lets_the_server_serve(
    tiny_model_path: Path,
) -> None:
    config = {"model": {"alias": TINY}, "prompt": {"system": PROFILE_SYSTEM}}
    with running_server(tiny_model_path, context_size=256, extra_config=config) as server:
        assert "was not evaluated ahead" in server.log_text()
        with pytest.raises(openai.BadRequestError) as info:
            client_for(server).chat.completions.create(
                model=TINY, max_tokens=4, messages=[{"role": "user", "content": "hi"}]
            )
        assert info.value.body["param"] == "messages"


def test_metrics_expose_the_documented_names(tiny_server: ServerHandle) -> None:
    client_for(tiny_server).chat.completions.create(
        model=TINY, max_tokens=4, messages=[{"role": "user", "content": "metrics"}]
    )
    text = httpx.get(tiny_server.metrics_url, timeout=10).text
    for name in (
        "sentiric_llm_requests_total",
        "sentiric_llm_time_to_first_token_seconds_bucket",
        "sentiric_llm_request_duration_seconds_count",
        "sentiric_llm_prompt_tokens_total",
        "sentiric_llm_generated_tokens_total",
        "sentiric_llm_queue_depth",
        "sentiric_llm_sequences_active",
        "sentiric_llm_sequences_max",
        "sentiric_llm_kv_cache_usage_ratio",
        "sentiric_llm_batch_tokens_bucket",
        "sentiric_llm_step_decode_seconds_bucket",
        "sentiric_llm_step_sampling_seconds_bucket",
        "sentiric_llm_model_ready",
    ):
        assert f"\n{name}" in text, name
    assert metric(tiny_server, "sentiric_llm_model_ready") == 1.0
    assert metric(tiny_server, "sentiric_llm_sequences_max") == 4.0
    # Which llama.cpp kernels serve (issue 11): a CPU variant that is never the AMX one.
    info = [line for line in text.splitlines() if line.startswith("sentiric_llm_build_info{")]
    assert len(info) == 1 and info[0].endswith(" 1.0"), info
    assert 'gpu="none"' in info[0] and 'cpu_variant="' in info[0]
    assert 'cpu_variant="sapphirerapids"' not in info[0]
    assert 'api="http_chat"' in text


def test_overload_is_429_with_retry_after_and_disconnect_frees_the_sequence(
    tiny_model_path: Path,
) -> None:
    with (
        running_server(
            tiny_model_path, parallel=1, max_queue=0, context_size=4096, extra_config=ONE_SLOT
        ) as server,
        httpx.Client(timeout=60) as http,
    ):
        client = client_for(server)
        cancelled_before = metric(
            server, "sentiric_llm_requests_total", '{api="http_chat",outcome="cancelled"}'
        )
        response = http.send(long_stream_request(server), stream=True)
        try:
            lines = response.iter_lines()
            # Wait for generated text, not just the role chunk: by then the engine has
            # admitted the request and published its gauges.
            first_text = next(
                line
                for line in lines
                if line.startswith("data: ")
                and json.loads(line.removeprefix("data: "))["choices"][0]["delta"].get("content")
            )
            assert first_text
            # The only sequence is busy and nothing may wait: refused at once.
            with pytest.raises(openai.RateLimitError) as info:
                client.chat.completions.create(
                    model=TINY, max_tokens=2, messages=[{"role": "user", "content": "me too"}]
                )
            assert info.value.response.headers["retry-after"].isdigit()
            assert info.value.body["type"] == "rate_limit_error"
            assert metric(server, "sentiric_llm_sequences_active") == 1.0
        finally:
            response.close()  # the client goes away mid-stream
        wait_until(
            lambda: metric(server, "sentiric_llm_sequences_active") == 0.0,
            30,
            "the sequence to be freed",
        )
        reply = client.chat.completions.create(
            model=TINY, max_tokens=2, messages=[{"role": "user", "content": "now me"}]
        )
        assert reply.choices[0].finish_reason in ("stop", "length")
        cancelled = metric(
            server, "sentiric_llm_requests_total", '{api="http_chat",outcome="cancelled"}'
        )
        assert cancelled == cancelled_before + 1
        overloaded = metric(
            server, "sentiric_llm_requests_total", '{api="http_chat",outcome="overloaded"}'
        )
        assert overloaded == 1.0


def test_non_streaming_disconnect_frees_the_sequence(tiny_model_path: Path) -> None:
    with running_server(
        tiny_model_path, parallel=1, max_queue=0, context_size=4096, extra_config=ONE_SLOT
    ) as server:
        body = {
            "model": TINY,
            "max_tokens": 3900,
            "temperature": 1.0,
            "seed": 5,
            "messages": [{"role": "user", "content": "Talk."}],
        }
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{server.openai_base_url}/chat/completions", json=body, timeout=0.3)
        wait_until(
            lambda: metric(server, "sentiric_llm_sequences_active") == 0.0,
            30,
            "the sequence to be freed",
        )
        reply = client_for(server).chat.completions.create(
            model=TINY, max_tokens=2, messages=[{"role": "user", "content": "next"}]
        )
        assert reply.choices[0].finish_reason in ("stop", "length")


def test_sigterm_lets_an_in_flight_stream_finish(tiny_model_path: Path) -> None:
    with running_server(tiny_model_path, extra_config={"model": {"alias": TINY}}) as server:
        with (
            httpx.Client(timeout=60) as http,
            http.stream(
                "POST",
                f"{server.openai_base_url}/chat/completions",
                json={
                    "model": TINY,
                    "stream": True,
                    "max_tokens": 200,
                    "temperature": 0,
                    "messages": [{"role": "user", "content": "Count."}],
                },
            ) as response,
        ):
            lines = response.iter_lines()
            next(line for line in lines if line.startswith("data: "))
            server.process.send_signal(signal.SIGTERM)
            rest = [line for line in lines if line.startswith("data: ")]
        assert rest[-1] == "data: [DONE]"
        finishes = [
            json.loads(line.removeprefix("data: "))["choices"][0]["finish_reason"]
            for line in rest[:-1]
        ]
        assert finishes[-1] in ("stop", "length")
        assert server.process.wait(timeout=30) == 0
        assert "shutting down" in server.log_text()


def test_sigterm_during_the_system_prompt_warm_up_stops_at_once(smollm2_path: Path) -> None:
    # ~1,800 tokens: seconds of prefill on a CPU, so the signal lands in the middle of it.
    config = {"model": {"alias": SMOL}, "prompt": {"system": " ".join([PROFILE_SYSTEM] * 3)}}
    with running_server(smollm2_path, context_size=4096, extra_config=config, wait=False) as server:
        wait_until(
            lambda: "system prompt" in str(ready_answer(server)), 180, "the warm-up to start"
        )
        signalled = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=30) == 0
        log = server.log_text()
    # The prefill was abandoned (at its next 64-token chunk), not waited for.
    assert "evaluated the profile's system prompt ahead" not in log, log
    assert time.monotonic() - signalled < 20
    assert '"stopped"' in log


def test_streams_still_running_after_the_grace_period_end_with_an_error_chunk(
    tiny_model_path: Path,
) -> None:
    with running_server(
        tiny_model_path, context_size=4096, extra_config=ONE_SLOT, args=["--shutdown-grace", "1"]
    ) as server:
        with httpx.Client(timeout=60) as http:
            response = http.send(long_stream_request(server), stream=True)
            try:
                lines = response.iter_lines()
                next(line for line in lines if line.startswith("data: "))
                server.process.send_signal(signal.SIGTERM)
                rest = [line for line in lines if line.startswith("data: ")]
            finally:
                response.close()
        assert rest[-1] == "data: [DONE]"
        last = json.loads(rest[-2].removeprefix("data: "))
        assert last["error"]["code"] == "cancelled"
        assert last["error"]["type"] == "unavailable_error"
        assert server.process.wait(timeout=30) == 0
