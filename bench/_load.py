"""Shared bench helpers: timed streaming chat waves over HTTP, and llama_cpp.server as a process.

Every OpenAI-compatible server is driven by the same client code (the official `openai`
AsyncOpenAI client), so differences in the figures come from the servers, not the load.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import aiohttp
import httpx
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionMessageParam
from prometheus_client.parser import text_string_to_metric_families
from sentiric_inference.client.measuring import percentile

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # tests.support.server: free ports, pid-based stopping

from tests.support.server import free_port, stop_process  # noqa: E402

READY_TIMEOUT_S = 120.0

Messages = Sequence[Mapping[str, str]]


@dataclass(frozen=True, slots=True)
class Sampling:
    """Sampler settings sent explicitly to every server, so none falls back to its own default."""

    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    repeat_penalty: float = 1.0
    seed: int | None = None  # the same seed gives the same reply on every run and server

    def extra_body(self) -> dict[str, Any]:
        # top_k / min_p / repeat_penalty are llama.cpp-style extensions both servers accept.
        body: dict[str, Any] = {
            "top_k": self.top_k,
            "min_p": self.min_p,
            "repeat_penalty": self.repeat_penalty,
        }
        if self.seed is not None:
            body["seed"] = self.seed
        return body


@dataclass(frozen=True, slots=True)
class StreamResult:
    """One streamed completion as the client saw it."""

    ttft: float  # seconds from sending the request to the first content delta
    duration: float  # seconds from sending the request to the end of the stream
    tokens: int  # completion tokens (from usage, else one per content chunk)
    counted_from: Literal["usage", "chunks"]
    finish_reason: str | None
    prompt_tokens: int | None
    cached_tokens: int | None
    # perf_counter() at each content chunk (one per token, bar UTF-8 hold-back).
    chunk_times: tuple[float, ...]
    text: str  # the content deltas joined: the reply a multi-turn client sends back


@dataclass(frozen=True, slots=True)
class Wave:
    """N streams sent at once; wall spans the first request sent to the last stream finished."""

    results: tuple[StreamResult, ...]
    wall: float

    @property
    def tokens(self) -> int:
        return sum(r.tokens for r in self.results)

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.wall

    def ttft(self, q: float) -> float:
        value = percentile([r.ttft for r in self.results], q)
        if value is None:
            raise ValueError("empty wave")
        return value

    @property
    def prompt_tokens(self) -> int | None:
        counts = [r.prompt_tokens for r in self.results]
        return None if None in counts else sum(c or 0 for c in counts)

    @property
    def cached_tokens(self) -> int | None:
        counts = [r.cached_tokens for r in self.results]
        return None if None in counts else sum(c or 0 for c in counts)

    @property
    def stream_tokens_per_s(self) -> float | None:
        """Median over streams of each stream's own speed once it started (chunks after the
        first over the time from the first to the last): what one caller hears."""
        rates = [
            (len(r.chunk_times) - 1) / (r.chunk_times[-1] - r.chunk_times[0])
            for r in self.results
            if len(r.chunk_times) > 1 and r.chunk_times[-1] > r.chunk_times[0]
        ]
        return statistics.median(rates) if rates else None

    @property
    def decode_tokens_per_s(self) -> float | None:
        """Chunks/s once every stream has its first token: the phase the ceiling times.

        Only meaningful for a server that runs the streams together; None when that phase
        is too short to time (e.g. one stream after another).
        """
        start = max(r.chunk_times[0] for r in self.results)
        end = max(r.chunk_times[-1] for r in self.results)
        after = sum(1 for r in self.results for t in r.chunk_times if t > start)
        return after / (end - start) if end > start and after >= len(self.results) else None


def openai_client(base_url: str, timeout_s: float) -> AsyncOpenAI:
    """A client that never retries (a retry would hide a failure inside a timing)."""
    return AsyncOpenAI(
        base_url=base_url,
        api_key="unused",
        max_retries=0,
        timeout=timeout_s,
    )


async def model_id(client: AsyncOpenAI) -> str:
    """The id the server reports for its one model."""
    models = (await client.models.list()).data
    if not models:
        raise RuntimeError("server lists no model")
    return models[0].id


async def stream_chat(
    client: Chat,
    model: str,
    messages: Messages,
    *,
    max_tokens: int,
    sampling: Sampling,
) -> StreamResult:
    """Stream one chat completion; time to the first content delta and count its tokens."""
    if isinstance(client, SSEChat):
        return await client.stream(model, messages, max_tokens=max_tokens, sampling=sampling)
    started = time.perf_counter()
    chunk_times: list[float] = []
    parts: list[str] = []
    finish: str | None = None
    usage_tokens: int | None = None
    prompt_tokens: int | None = None
    cached_tokens: int | None = None
    stream = await client.chat.completions.create(
        model=model,
        messages=cast("list[ChatCompletionMessageParam]", [dict(m) for m in messages]),
        max_tokens=max_tokens,
        temperature=sampling.temperature,
        top_p=sampling.top_p,
        stream=True,
        stream_options={"include_usage": True},
        extra_body=sampling.extra_body(),
    )
    async with stream:
        async for chunk in stream:
            for choice in chunk.choices:
                if choice.delta.content:
                    chunk_times.append(time.perf_counter())
                    parts.append(choice.delta.content)
                finish = choice.finish_reason or finish
            if chunk.usage is not None:
                usage_tokens = chunk.usage.completion_tokens
                prompt_tokens = chunk.usage.prompt_tokens
                details = chunk.usage.prompt_tokens_details
                cached_tokens = details.cached_tokens if details is not None else None
    return _result(
        started,
        chunk_times,
        "".join(parts),
        finish,
        usage_tokens=usage_tokens,
        prompt_tokens=prompt_tokens,
        cached_tokens=cached_tokens,
    )


def _result(
    started: float,
    chunk_times: list[float],
    text: str,
    finish: str | None,
    *,
    usage_tokens: int | None,
    prompt_tokens: int | None,
    cached_tokens: int | None,
) -> StreamResult:
    duration = time.perf_counter() - started
    if not chunk_times:
        raise RuntimeError(f"stream produced no text (finish_reason {finish!r})")
    # llama_cpp.server sends no usage in streams; it emits one chunk per sampled token.
    counted_from: Literal["usage", "chunks"] = "chunks" if usage_tokens is None else "usage"
    tokens = len(chunk_times) if usage_tokens is None else usage_tokens
    return StreamResult(
        chunk_times[0] - started,
        duration,
        tokens,
        counted_from,
        finish,
        prompt_tokens,
        cached_tokens,
        tuple(chunk_times),
        text,
    )


# Under the 5 s after which llama-server (cpp-httplib) closes an idle keep-alive connection.
IDLE_KEEPALIVE_S = 2.0


class SSEChat:
    """Streaming chat completions over aiohttp, reading the SSE lines itself.

    The bench's clients share the two vCPUs with the server they measure, and llama.cpp's
    lockstep threads lose about two milliseconds of decoding for each one another thread
    takes. The official openai client spends ~0.65 ms of CPU per streamed chunk (a pydantic
    object each); this reader, on aiohttp's C parser, a fraction of that, so the harness
    weighs less on what it measures. Same request body, same figures as stream_chat's.
    """

    def __init__(self, base_url: str, timeout_s: float) -> None:
        self._url = base_url + "/chat/completions"
        # Reusing a connection the server is closing fails the request ("Server disconnected").
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=timeout_s),
            connector=aiohttp.TCPConnector(keepalive_timeout=IDLE_KEEPALIVE_S),
        )

    async def __aenter__(self) -> SSEChat:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._session.close()

    async def stream(
        self, model: str, messages: Messages, *, max_tokens: int, sampling: Sampling
    ) -> StreamResult:
        body = {
            "model": model,
            "messages": [dict(m) for m in messages],
            "max_tokens": max_tokens,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "stream": True,
            "stream_options": {"include_usage": True},
            **sampling.extra_body(),
        }
        started = time.perf_counter()
        async with self._session.post(self._url, json=body) as response:
            if response.status != 200:
                raise RuntimeError(f"HTTP {response.status}: {await response.text()}")
            reading = await read_sse(aiohttp_lines(response.content))
        usage = reading.usage
        details = (usage or {}).get("prompt_tokens_details") or {}
        return _result(
            started,
            reading.chunk_times,
            "".join(reading.parts),
            reading.finish,
            usage_tokens=usage["completion_tokens"] if usage else None,
            prompt_tokens=usage.get("prompt_tokens") if usage else None,
            cached_tokens=details.get("cached_tokens"),
        )


@dataclass(slots=True)
class SSEReading:
    """What an OpenAI SSE stream said: when each content delta came, its finish, its usage."""

    chunk_times: list[float]  # perf_counter() at each content delta
    parts: list[str]  # the content deltas
    finish: str | None
    usage: dict[str, Any] | None


async def read_sse(lines: AsyncIterator[str]) -> SSEReading:
    """Read `data:` lines to the end, stamping each chunk that carries content."""
    reading = SSEReading([], [], None, None)
    async for line in lines:
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        chunk = json.loads(line[6:])
        for choice in chunk.get("choices") or ():
            content = (choice.get("delta") or {}).get("content")
            if content:
                reading.chunk_times.append(time.perf_counter())
                reading.parts.append(content)
            reading.finish = choice.get("finish_reason") or reading.finish
        reading.usage = chunk.get("usage") or reading.usage
    return reading


async def aiohttp_lines(content: aiohttp.StreamReader) -> AsyncIterator[str]:
    """An aiohttp body as text lines without their line ends."""
    async for raw in content:
        yield raw.decode().rstrip("\r\n")


Chat = AsyncOpenAI | SSEChat


async def run_wave(
    client: Chat,
    model: str,
    conversations: Sequence[Messages],
    *,
    max_tokens: int,
    sampling: Sampling,
) -> Wave:
    """Send every conversation at once, each on its own stream, and time the whole wave."""
    started = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        tasks = [
            group.create_task(
                stream_chat(client, model, messages, max_tokens=max_tokens, sampling=sampling)
            )
            for messages in conversations
        ]
    wall = time.perf_counter() - started
    return Wave(tuple(task.result() for task in tasks), wall)


def read_samples(metrics_url: str, names: Sequence[str]) -> dict[str, float]:
    """Current values of Prometheus samples by their full names (e.g. `x_seconds_sum`), labels
    summed; a name the server does not expose raises KeyError rather than reading as 0."""
    text = httpx.get(metrics_url, timeout=10.0).text
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in names:
                values[sample.name] = values.get(sample.name, 0.0) + sample.value
    missing = [name for name in names if name not in values]
    if missing:
        raise KeyError(f"{', '.join(missing)} not exposed at {metrics_url}")
    return values


def read_counter(metrics_url: str, name: str) -> float:
    """Current value of a Prometheus counter (its `_total` sample, labels summed)."""
    return read_samples(metrics_url, [f"{name}_total"])[f"{name}_total"]


def _wait_ready(process: subprocess.Popen[bytes], base_url: str, log_path: Path, name: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with {process.returncode}:\n"
                    + log_path.read_text(errors="replace")[-4000:]
                )
            with contextlib.suppress(httpx.TransportError):
                if client.get(f"{base_url}/models").status_code == 200:
                    return
            time.sleep(0.2)
    raise TimeoutError(f"{name} not ready after {READY_TIMEOUT_S}s")


@contextlib.contextmanager
def _serving(command: list[str], port: int, log_path: Path, name: str) -> Iterator[str]:
    """Start a server process logging to log_path, wait until it answers; yields its /v1 URL.

    The process is stopped by pid on exit, even when the body fails.
    """
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        base_url = f"http://127.0.0.1:{port}/v1"
        _wait_ready(process, base_url, log_path, name)
        yield base_url
    finally:
        stop_process(process)


@contextlib.contextmanager
def llama_cpp_server(
    model_path: Path,
    *,
    context_size: int,
    threads: int,
    batch_size: int,
    alias: str,
) -> Iterator[str]:
    """Run llama_cpp.server (through _llama_cpp_server.py) on a free 127.0.0.1 port; yields
    its /v1 base URL.

    interrupt_requests is off so every stream runs to its end instead of being cut by the
    next request. Flash attention on matches "auto" on CPU (the ceiling and our engine), and
    logits_all off spares it computing logits for every prompt token, which no request needs.
    The process is stopped by pid on exit, even when the body fails.
    """
    port = free_port()
    log_path = Path(tempfile.mkdtemp(prefix="llama-cpp-server-")) / "server.log"
    command = [
        sys.executable,
        str(Path(__file__).resolve().parent / "_llama_cpp_server.py"),
        "--model",
        str(model_path),
        "--model_alias",
        alias,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        str(context_size),
        "--n_batch",
        str(batch_size),
        "--n_threads",
        str(threads),
        "--n_threads_batch",
        str(threads),
        "--n_gpu_layers",
        "-1",
        "--flash_attn",
        "True",
        "--logits_all",
        "False",
        "--interrupt_requests",
        "False",
        "--verbose",
        "False",
    ]
    with _serving(command, port, log_path, "llama_cpp.server") as base_url:
        yield base_url


def default_llama_server() -> Path | None:
    """The llama-server that hack/llama-server.sh builds for this machine, if it has been built."""
    # The script owns the cache key (version, build flags, this CPU's flags): ask it.
    script = Path(__file__).resolve().parent.parent / "hack" / "llama-server.sh"
    found = subprocess.run(
        ["bash", str(script), "--path"], capture_output=True, text=True, check=False, timeout=30
    )
    binary = Path(found.stdout.strip()) if found.returncode == 0 else None
    return (
        binary if binary is not None and binary.is_file() and os.access(binary, os.X_OK) else None
    )


@contextlib.contextmanager
def llama_server(
    binary: Path,
    model_path: Path,
    *,
    parallel: int,
    context_size: int,
    threads: int,
    batch_size: int,
    alias: str,
    unified: bool = True,
) -> Iterator[str]:
    """Run llama.cpp's own C++ server on a free 127.0.0.1 port; yields its /v1 base URL.

    Shaped like ours: `parallel` slots over one unified KV cache of context_size cells per
    slot (or one stream per slot without `unified`, as ours with kvLayout streams), continuous
    batching, the same threads, batch size and flash-attention setting.
    Everything else (its RAM prompt cache included) stays at llama.cpp's defaults, as a user
    would run it. Stopped by pid on exit, even when the body fails.
    """
    port = free_port()
    log_path = Path(tempfile.mkdtemp(prefix="llama-server-")) / "server.log"
    command = [
        str(binary),
        "--model",
        str(model_path),
        "--alias",
        alias,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--parallel",
        str(parallel),
        "--ctx-size",
        str(context_size * parallel),
        "--batch-size",
        str(batch_size),
        "--threads",
        str(threads),
        "--threads-batch",
        str(threads),
        "--n-gpu-layers",
        "999",  # all layers, where there is a GPU to offload to (as gpuLayers -1 in ours)
        "--flash-attn",
        "auto",
        "--no-webui",
        *(["--kv-unified"] if unified else []),
    ]
    with _serving(command, port, log_path, "llama-server") as base_url:
        yield base_url
