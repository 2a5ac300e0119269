"""gRPC GenerateStream vs OpenAI-compatible HTTP streaming on one server and model.

Starts `sentiric-llm serve` on SmolLM2-135M-Instruct (the embedded default), then, in
interleaved rounds, runs the same greedy workload through both APIs at 1 and 8 concurrent
streams and prints TTFT p50 and aggregate tokens/s per API, the medians over rounds, and
the gRPC/HTTP ratios. The APIs are thin adapters over one serving layer, so the ratios are
expected within 10% of 1.0.

The client runs on the same cores as the server and is part of every figure, so the
verdict compares the gRPC client with an HTTP client of the same weight: aiohttp, whose
HTTP parser is C as gRPC's is. The official openai client (pydantic objects per chunk,
over httpx) and a bare httpx SSE reader are measured beside it (--http-clients) to show
what a heavier client adds on its own side.

    .venv/bin/python bench/bench_grpc_vs_http.py [--rounds 5] [--max-tokens 64] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # tests.support.server: the project's managed server process
sys.path.insert(0, str(REPO / "bench"))  # _load: the SSE reader bench_server.py uses too

import aiohttp  # noqa: E402
import httpx  # noqa: E402
from _load import aiohttp_lines, read_sse  # noqa: E402
from openai import AsyncOpenAI  # noqa: E402
from sentiric_inference.client import GenerationOptions  # noqa: E402
from sentiric_inference.client.benchmarking import run_load  # noqa: E402
from sentiric_inference.client.measuring import LoadReport, Sample  # noqa: E402
from sentiric_inference.models.embedded import embedded_model_path  # noqa: E402

from tests.support.server import ServerHandle, running_server  # noqa: E402

PROMPT = "Explain in a few sentences why the sky is blue."
TOLERANCE = 0.10


async def _http_one(client: AsyncOpenAI, model: str, max_tokens: int) -> Sample:
    started = time.perf_counter()
    first: float | None = None
    tokens = 0
    finish: str | None = None
    stream = await client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": PROMPT}],
        temperature=0.0,
        max_tokens=max_tokens,
        stream=True,
        stream_options={"include_usage": True},
    )
    async for chunk in stream:
        if chunk.choices:
            choice = chunk.choices[0]
            if first is None and choice.delta.content:
                first = time.perf_counter() - started
            finish = choice.finish_reason or finish
        if chunk.usage is not None:
            tokens = chunk.usage.completion_tokens
    return Sample("OK", finish, first, time.perf_counter() - started, tokens)


def _body(model: str, max_tokens: int) -> dict[str, Any]:
    return {
        "model": model,
        "messages": [{"role": "user", "content": PROMPT}],
        "temperature": 0.0,
        "max_tokens": max_tokens,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


async def _sample_from_sse(lines: AsyncIterator[str], started: float) -> Sample:
    """One HTTP stream as a Sample, read with the server bench's SSE reader."""
    reading = await read_sse(lines)
    first = reading.chunk_times[0] - started if reading.chunk_times else None
    tokens = reading.usage["completion_tokens"] if reading.usage else 0
    return Sample("OK", reading.finish, first, time.perf_counter() - started, tokens)


async def _httpx_one(client: httpx.AsyncClient, model: str, max_tokens: int) -> Sample:
    """A thin SSE client, as thin as our gRPC client: no per-chunk model objects."""
    started = time.perf_counter()
    async with client.stream("POST", "chat/completions", json=_body(model, max_tokens)) as response:
        response.raise_for_status()
        return await _sample_from_sse(response.aiter_lines(), started)


async def _aiohttp_one(
    session: aiohttp.ClientSession, url: str, model: str, max_tokens: int
) -> Sample:
    """The same SSE reading over aiohttp, whose C parser costs about what gRPC's does."""
    started = time.perf_counter()
    async with session.post(url, json=_body(model, max_tokens)) as response:
        response.raise_for_status()
        return await _sample_from_sse(aiohttp_lines(response.content), started)


async def http_load(
    base_url: str, concurrent: int, requests: int, max_tokens: int, http_client: str = "aiohttp"
) -> LoadReport:
    """The HTTP twin of client.benchmarking.run_load: same worker pattern, same Sample."""
    remaining = iter(range(requests))
    samples: list[Sample] = []
    url = base_url + "/chat/completions"
    async with (
        AsyncOpenAI(base_url=base_url, api_key="unused", max_retries=0) as client,
        httpx.AsyncClient(base_url=base_url + "/", timeout=120) as thin,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session,
    ):
        model = (await client.models.list()).data[0].id

        async def one() -> Sample:
            if http_client == "aiohttp":
                return await _aiohttp_one(session, url, model, max_tokens)
            if http_client == "httpx":
                return await _httpx_one(thin, model, max_tokens)
            return await _http_one(client, model, max_tokens)

        async def worker() -> None:
            for _ in remaining:
                samples.append(await one())

        started = time.perf_counter()
        async with asyncio.TaskGroup() as group:
            for _ in range(concurrent):
                group.create_task(worker())
        wall = time.perf_counter() - started
    return LoadReport(concurrent=concurrent, samples=tuple(samples), wall_time=wall)


async def grpc_load(target: str, concurrent: int, requests: int, max_tokens: int) -> LoadReport:
    options = GenerationOptions(temperature=0.0, max_new_tokens=max_tokens)
    return await run_load(target, PROMPT, options, concurrent=concurrent, requests=requests)


def _figures(report: LoadReport) -> tuple[float, float]:
    if report.errors:
        raise RuntimeError(f"requests failed: {report.errors}")
    ttft, rate = report.ttft(50), report.aggregate_tokens_per_second
    if ttft is None or rate is None:
        raise RuntimeError("no text was streamed")
    return ttft, rate


async def _load(
    server: ServerHandle, api: str, concurrent: int, requests: int, tokens: int
) -> LoadReport:
    if api == "grpc":
        return await grpc_load(server.grpc_target, concurrent, requests, tokens)
    return await http_load(
        server.openai_base_url, concurrent, requests, tokens, api.removeprefix("http/")
    )


async def measure(server: ServerHandle, args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    apis = ["grpc", *(f"http/{name}" for name in args.http_clients)]
    verdict_api = apis[1]
    # Warm-up: load pages of the model and fill the prefix cache for every client alike.
    for api in apis:
        await _load(server, api, 1, 2, args.max_tokens)
    for concurrent in args.concurrency:
        requests = concurrent * args.requests_per_stream
        per_api: dict[str, dict[str, list[float]]] = {
            api: {"ttft_p50_s": [], "aggregate_tokens_per_s": []} for api in apis
        }
        for round_ in range(args.rounds):
            # Rotate which API goes first so drift in machine load hits all of them alike.
            shift = round_ % len(apis)
            for api in apis[shift:] + apis[:shift]:
                ttft, rate = _figures(
                    await _load(server, api, concurrent, requests, args.max_tokens)
                )
                per_api[api]["ttft_p50_s"].append(ttft)
                per_api[api]["aggregate_tokens_per_s"].append(rate)
                print(
                    f"  c={concurrent} round {round_ + 1}/{args.rounds} {api:12}: "
                    f"TTFT p50 {ttft * 1000:7.1f} ms  aggregate {rate:7.1f} tok/s",
                    file=sys.stderr,
                )
        medians = {
            api: {name: statistics.median(values) for name, values in figures.items()}
            for api, figures in per_api.items()
        }
        ratios = {
            api: {
                name: medians["grpc"][name] / medians[api][name]
                for name in ("ttft_p50_s", "aggregate_tokens_per_s")
            }
            for api in apis[1:]
        }
        results[f"concurrent_{concurrent}"] = {
            "requests_per_round": requests,
            "rounds": per_api,
            "median": medians,
            "grpc_over_http": ratios,
            "verdict_http_client": verdict_api,
            "within_10_percent": all(abs(r - 1) <= TOLERANCE for r in ratios[verdict_api].values()),
        }
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests-per-stream", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument(
        "--http-clients",
        nargs="+",
        choices=("aiohttp", "httpx", "openai"),
        default=["aiohttp", "openai"],
        help="HTTP clients to measure; the first one gives the within-10%% verdict",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    if len(set(args.http_clients)) != len(args.http_clients):
        parser.error("--http-clients must not repeat a client")
    model = embedded_model_path()
    print(f"model {model.name}; starting server ...", file=sys.stderr)
    with running_server(model, parallel=max(args.concurrency), context_size=2048) as server:
        results = asyncio.run(measure(server, args))
    if args.json:
        print(json.dumps({"model": model.name, **results}, indent=2))
        return 0
    print(
        f"\ngRPC vs HTTP on {model.name}, greedy, max_tokens={args.max_tokens}, "
        f"medians of {args.rounds} rounds"
    )
    print(
        f"{'streams':>8} {'api':>13} {'TTFT p50':>10} {'aggregate':>12} {'grpc/api TTFT':>14} {'tok/s':>6}"
    )
    for key, result in results.items():
        streams = key.removeprefix("concurrent_")
        for api, m in result["median"].items():
            r = result["grpc_over_http"].get(api)
            ratio = f"{r['ttft_p50_s']:14.3f} {r['aggregate_tokens_per_s']:6.3f}" if r else ""
            print(
                f"{streams:>8} {api:>13} {m['ttft_p50_s'] * 1000:8.1f}ms "
                f"{m['aggregate_tokens_per_s']:8.1f}tok/s {ratio}"
            )
        print(
            f"{streams:>8} gRPC vs {result['verdict_http_client']}: "
            f"{'within' if result['within_10_percent'] else 'NOT within'} 10%"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
