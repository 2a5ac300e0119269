"""Drive GenerateStream at a fixed concurrency and collect one Sample per request."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Final

import grpc

from sentiric_inference.client.clients import AsyncLlamaClient
from sentiric_inference.client.measuring import LoadReport, Sample
from sentiric_inference.client.tls import TLSOptions
from sentiric_inference.client.types import GenerationOptions, StreamProtocolError

OK: Final = "OK"


async def measure_one(
    client: AsyncLlamaClient,
    prompt: str,
    options: GenerationOptions,
    *,
    timeout: float | None = None,  # noqa: ASYNC109 - the gRPC deadline
    trace_id: str | None = None,
) -> Sample:
    """One streamed request; a failed call becomes a Sample with its status code name."""
    started = time.perf_counter()
    try:
        completion = await client.generate(
            prompt, options=options, timeout=timeout, trace_id=trace_id
        )
    except grpc.aio.AioRpcError as exc:
        return Sample(status=exc.code().name, duration=time.perf_counter() - started)
    except StreamProtocolError:
        return Sample(status="NO_FINISH_DETAILS", duration=time.perf_counter() - started)
    return Sample(
        status=OK,
        finish_reason=completion.finish.reason,
        time_to_first_token=completion.time_to_first_token,
        duration=completion.duration,
        completion_tokens=completion.finish.completion_tokens,
    )


async def run_load(
    target: str,
    prompt: str,
    options: GenerationOptions,
    *,
    concurrent: int,
    requests: int,
    tls: TLSOptions | None = None,
    api_key: str | None = None,
    timeout: float | None = None,  # noqa: ASYNC109 - the gRPC deadline of each call
    on_done: Callable[[Sample], object] | None = None,
) -> LoadReport:
    """`requests` calls over one channel, at most `concurrent` in flight at any time."""
    if concurrent < 1 or requests < 1:
        raise ValueError("concurrent and requests must both be at least 1")
    remaining = iter(range(requests))
    samples: list[Sample] = []

    async def worker(client: AsyncLlamaClient) -> None:
        # Each worker takes the next request number until none are left, so exactly
        # `concurrent` streams run until the tail of the run.
        for number in remaining:
            sample = await measure_one(
                client, prompt, options, timeout=timeout, trace_id=f"bench-{number}"
            )
            samples.append(sample)
            if on_done is not None:
                on_done(sample)

    async with AsyncLlamaClient(target, tls=tls, api_key=api_key) as client:
        started = time.perf_counter()
        async with asyncio.TaskGroup() as group:
            for _ in range(min(concurrent, requests)):
                group.create_task(worker(client))
        wall = time.perf_counter() - started
    return LoadReport(concurrent=concurrent, samples=tuple(samples), wall_time=wall)
