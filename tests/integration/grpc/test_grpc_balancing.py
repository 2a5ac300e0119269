"""Balanced client over three real server processes: round robin, session affinity, failover.

Each server logs every GenerateStream with the caller's x-session-id, so which server served
which call is read from the servers' own logs, not from the client's word.
"""

from __future__ import annotations

import contextlib
import json
import signal
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from sentiric_inference.client import (
    AsyncLlamaClient,
    BalancingOptions,
    Finish,
    GenerationOptions,
    LlamaClient,
)

from tests.support.server import ServerHandle, running_server, stop_process

pytestmark = pytest.mark.model

SHORT = GenerationOptions(temperature=0.0, max_new_tokens=2)
SESSIONS = [f"call-{n}" for n in range(9)]


@contextlib.contextmanager
def _servers(model: Path, count: int = 3) -> Iterator[list[ServerHandle]]:
    with contextlib.ExitStack() as stack:
        yield [
            stack.enter_context(
                running_server(
                    model,
                    parallel=2,
                    context_size=8192,
                    extra_config={"sampling": {"maxTokens": 4096}},
                )
            )
            for _ in range(count)
        ]


@pytest.fixture
def servers(tiny_model_path: Path) -> Iterator[list[ServerHandle]]:
    with _servers(tiny_model_path) as handles:
        yield handles


def _ipv4(servers: Sequence[ServerHandle]) -> str:
    return "ipv4:" + ",".join(s.grpc_target for s in servers)


def _started(server: ServerHandle) -> list[dict[str, object]]:
    """The server's 'GenerateStream started' log records (JSON lines)."""
    records = []
    for line in server.log_text().splitlines():
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if isinstance(record, dict) and record.get("message") == "GenerateStream started":
                records.append(record)
    return records


def _served(servers: Sequence[ServerHandle]) -> dict[str, set[str]]:
    """session id -> the gRPC targets of the servers that logged a call of it."""
    out: dict[str, set[str]] = {}
    for server in servers:
        for record in _started(server):
            if "session_id" in record:
                out.setdefault(str(record["session_id"]), set()).add(server.grpc_target)
    return out


def _call_all(client: LlamaClient, sessions: Sequence[str]) -> None:
    for session in sessions:
        completion = client.generate("Hi", options=SHORT, timeout=30, session=session)
        assert completion.finish.reason == "length"


def test_calls_without_a_session_spread_over_every_endpoint(
    servers: list[ServerHandle],
) -> None:
    with LlamaClient(_ipv4(servers)) as client:
        for _ in range(12):
            assert client.generate("Hi", options=SHORT, timeout=30).finish.reason == "length"
    counts = [len(_started(s)) for s in servers]
    assert sum(counts) == 12
    # round_robin over three READY subchannels; the first calls may precede the last
    # connection becoming READY, so "every endpoint served some" rather than exactly 4.
    assert all(n >= 2 for n in counts), counts


def test_a_session_sticks_to_one_endpoint_and_sessions_spread(
    servers: list[ServerHandle],
) -> None:
    with LlamaClient(_ipv4(servers)) as client:
        for _ in range(3):
            _call_all(client, SESSIONS)
        predicted = {s: client.endpoint_for(s) for s in SESSIONS}
    served = _served(servers)
    assert set(served) == set(SESSIONS)
    for session in SESSIONS:
        assert served[session] == {predicted[session]}, session
    # Nine sessions over three endpoints: rendezvous hashing uses more than one of them.
    assert len({t for targets in served.values() for t in targets}) >= 2


def test_killing_an_endpoint_moves_only_its_sessions(servers: list[ServerHandle]) -> None:
    with LlamaClient(_ipv4(servers), balancing=BalancingOptions(unavailable_cooldown=30)) as client:
        _call_all(client, SESSIONS)
        before = {s: next(iter(t)) for s, t in _served(servers).items()}
        victim = Counter(before.values()).most_common(1)[0][0]
        dead = next(s for s in servers if s.grpc_target == victim)
        dead.process.send_signal(signal.SIGKILL)
        dead.process.wait(timeout=10)
        survivors = [s for s in servers if s is not dead]
        counts_before = {s.grpc_target: len(_started(s)) for s in survivors}
        # The first call of a moved session may find the dead endpoint still READY in its
        # channel: it fails UNAVAILABLE before any response and is retried on the runner-up.
        _call_all(client, SESSIONS)
        _call_all(client, SESSIONS)
    after: dict[str, set[str]] = {}
    for server in survivors:
        for record in _started(server)[counts_before[server.grpc_target] :]:
            after.setdefault(str(record["session_id"]), set()).add(server.grpc_target)
    assert set(after) == set(SESSIONS)
    for session in SESSIONS:
        if before[session] == victim:
            assert len(after[session]) == 1 and victim not in after[session], session
        else:
            assert after[session] == {before[session]}, session
    assert any(before[s] == victim for s in SESSIONS)


def test_a_draining_endpoint_moves_its_sessions_while_its_stream_finishes(
    servers: list[ServerHandle],
) -> None:
    """SIGTERM: health turns NOT_SERVING, the session moves, the stream in flight ends well."""
    with LlamaClient(_ipv4(servers)) as client:
        owner = client.endpoint_for("drain-me")
        draining = next(s for s in servers if s.grpc_target == owner)
        others = [s for s in SESSIONS if client.endpoint_for(s) != owner]
        stream = client.stream(
            "Tell me a long story.",
            options=GenerationOptions(temperature=0.0, max_new_tokens=4000),
            timeout=60,
            session="drain-me",
        )
        next(stream)  # the stream is running on its endpoint
        draining.process.send_signal(signal.SIGTERM)
        # Health follows within one 50 ms poll; the endpoint channel sees it on its watch.
        deadline = time.monotonic() + 10
        while client.endpoint_for("drain-me") == owner and time.monotonic() < deadline:
            time.sleep(0.05)
        moved_to = client.endpoint_for("drain-me")
        assert moved_to != owner
        completion = client.generate("Hi", options=SHORT, timeout=30, session="drain-me")
        assert completion.finish.reason == "length"
        events = list(stream)
        # It ran on through the drain: the whole answer, not a cut stream.
        assert isinstance(events[-1], Finish) and events[-1].reason == "length"
        for session in others:
            assert client.endpoint_for(session) != owner
    assert stop_process(draining.process) == 0
    # The server logged the drain's start before the stream's finish: it was in flight.
    lines = draining.log_text().splitlines()
    shutting = next(i for i, line in enumerate(lines) if "shutting down" in line)
    finished = next(
        i
        for i, line in enumerate(lines)
        if "GenerateStream finished" in line and "drain-me" in line
    )
    assert shutting < finished
    served = _served(servers)
    assert served["drain-me"] == {owner, moved_to}


async def test_a_dns_target_is_resolved_again_as_endpoints_come_and_go(
    tiny_model_path: Path,
) -> None:
    """Re-resolution with the async client.

    A headless Service gives one A record per pod, all on one port; loopback servers here
    have one port each, and there is no DNS server to edit. So the resolver is a function
    whose answer the test changes, standing in for the DNS answer; everything past the
    answer (channels, health, hashing, calls) is real.
    """
    answer: list[str] = []
    with _servers(tiny_model_path) as trio:
        targets = [s.grpc_target for s in trio]
        answer[:] = targets[:2]
        options = BalancingOptions(refresh_interval=0.2, resolve=lambda host, port: list(answer))
        async with AsyncLlamaClient(
            "dns:///chat-headless.llm.svc:16071", balancing=options
        ) as client:
            owners = {s: await client.endpoint_for(s) for s in SESSIONS}
            assert set(owners.values()) <= set(targets[:2])
            answer[:] = targets  # a third pod became ready
            await _sleep(0.3)
            grown = {s: await client.endpoint_for(s) for s in SESSIONS}
            for session in SESSIONS:
                assert grown[session] in (owners[session], targets[2])
            answer[:] = [targets[0], targets[2]]  # the second pod went away
            await _sleep(0.3)
            shrunk = {s: await client.endpoint_for(s) for s in SESSIONS}
            for session in SESSIONS:
                if grown[session] != targets[1]:
                    assert shrunk[session] == grown[session]
                else:
                    assert shrunk[session] in (targets[0], targets[2])
            for session in SESSIONS:
                completion = await client.generate("Hi", options=SHORT, timeout=30, session=session)
                assert completion.finish.reason == "length"
        served = _served(trio)
        assert targets[1] not in {t for ts in served.values() for t in ts}
        for session in SESSIONS:
            assert served[session] == {shrunk[session]}


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


def test_the_cli_pins_a_session_and_refuses_a_bad_target(servers: list[ServerHandle]) -> None:
    import subprocess
    import sys

    def generate(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "sentiric_inference",
                "generate",
                "Hi",
                "--max-tokens",
                "2",
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    for _ in range(3):
        done = generate("--target", _ipv4(servers), "--session", "cli-call")
        assert done.returncode == 0, done.stderr
        assert "finish_reason=length" in done.stderr
    assert len(_served(servers)["cli-call"]) == 1
    bad = generate("--target", "ipv4:chat:16071", "--session", "cli-call")
    assert bad.returncode == 2
    assert "is not an IP address" in bad.stderr
