"""End-to-end server benchmark: our HTTP server vs the engine ceiling vs llama.cpp's servers.

Workload (issue 2): SmolLM2-135M-Instruct, N concurrent streaming chat clients (N = 1, 4, 8),
each sending a short user message (~30 tokens) and asking for 64 tokens at temperature 0.8.
Per N it measures aggregate generated tokens/s (completion tokens / wall time from the first
request sent to the last stream finished) and TTFT p50/p95 (first content delta) for
  ceiling       bench/ceiling.py's bare batched llama_decode loop (same model, threads, N),
                run in a process of its own (bench/_isolated.py says why)
  sentiric      `sentiric-llm serve` (parallel = max N), streaming over /v1/chat/completions
  llama_cpp     `python -m llama_cpp.server` (interrupt_requests off), same client code
  llama_server  llama.cpp's C++ server, same shape as ours (N slots, unified KV), when
                hack/llama-server.sh has built it (or --llama-server PATH); for reference
interleaved round by round in a rotating order, so background load hits all of them alike.
Every server is driven by the same client code: a thin aiohttp SSE reader (--client sse,
the default) or the official openai client (--client openai), which costs about three times
the CPU per chunk on the cores the servers run on.
Beside the ceiling, bench/_prefill.py times a bare prefill of N prompts: our uncached prompt
tokens over that rate are our TTFT floor. Then a prefix test on our server (a ~1,000-token
shared system prompt, TTFT on a miss vs a hit, confirmed by
`sentiric_llm_prefix_cache_tokens_total` and usage.cached_tokens) and a burst test on every
server (N streams opening at once with one new ~1,000-token system prompt).
Every system is measured once per round (the ceiling too, unless --ceiling-reps asks for the
best of several); figures are medians over --rounds and ratios are medians of the per-round
ratios. Sampling each side the same way matters on a shared host whose speed drifts: the
ceiling alone swings between ~125 and ~180 tok/s from one minute to the next on the 2-vCPU
machine of docs/performance.md, so the best of three ceiling runs against one server wave
sinks the ratio by ~10% whatever the server does. The report also gives the stricter view
(ours against the best ceiling of the whole run) and the workload bound: the rate of a bare
loop doing the wave's work, i.e. its uncached prompt tokens at the prefill ceiling's rate and
then the decode steps at the decode ceiling's.

    .venv/bin/python bench/bench_server.py [--rounds 5] [--seqs 1 4 8] [--shared] [--repeat]
                                           [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from sentiric_inference.engine.native import resolve_threads
from sentiric_inference.models.embedded import embedded_model_path

BENCH = Path(__file__).resolve().parent
# bench/ for its sibling modules, the repo root for tests.support.server (managed server).
sys.path[:0] = [str(BENCH), str(BENCH.parent)]

import _load  # noqa: E402
from _isolated import DecodeWorker  # noqa: E402
from _load import Chat, Messages, Sampling, Wave  # noqa: E402
from _prefill import measure_prefill  # noqa: E402
from _prompts import system_prompt  # noqa: E402
from _report import describe, print_report, summarise  # noqa: E402
from ceiling import measure_ceiling  # noqa: E402

from tests.support.server import running_server  # noqa: E402

CONTEXT_SIZE = 2048
BATCH_SIZE = 512
PREFIX_TOKENS = 1000
# Prompt length for the prefill ceiling: about what the chat template makes of a message.
PREFILL_PROMPT_TOKENS = 64
# Our server's step-phase histograms (seconds summed), as shares of a wave's wall time.
STEP_SAMPLES = {
    "decode_share": "sentiric_llm_step_decode_seconds_sum",
    "sampling_share": "sentiric_llm_step_sampling_seconds_sum",
}


SUBJECTS = (
    "a lighthouse keeper who finds a map in a bottle",
    "a baker who opens a shop on the moon",
    "two rival chess players stuck in a snowstorm",
    "a robot learning to paint in an old harbour town",
    "a girl who can talk to the river behind her house",
    "an old train that runs one last night across the desert",
    "a detective cat solving a mystery in a library",
    "a village that wakes up to find the sea gone",
    "a clockmaker whose clocks start running backwards",
    "a young pilot delivering letters across the mountains",
    "a gardener who grows a tree that sings at dawn",
    "a sailor who trades stories for food in every port",
)


def user_message(
    round_: int, n: int, index: int, *, shared: bool = False, repeat: bool = False
) -> str:
    """A ~30-token request for a long story, unique to its round, wave size and stream.

    The unique label comes first, so two messages share no prefix beyond the chat template's
    (what independent users of one profile share); every server gets the same messages.
    With `shared`, all streams of a wave send one message (still new to the round and N),
    the workload of a load tool that repeats one prompt. With `repeat`, stream i sends the
    same message in every wave and round (a fixed prompt list, as most load tools use), so a
    server that keeps prompts cached between requests evaluates them once per run.
    """
    if shared:
        index = 0
    if repeat:
        subject = SUBJECTS[index % len(SUBJECTS)]
        label = f"Story {index + 1}"
    else:
        subject = SUBJECTS[(round_ * 5 + n + index) % len(SUBJECTS)]
        label = f"Story {round_ + 1}.{n}.{index + 1}"
    return (
        f"{label}: write a long and detailed story about {subject}, "
        "describing the places, the people and everything that happens."
    )


class Bench:
    """One run: holds both servers' clients and collects per-round figures."""

    def __init__(
        self, args: argparse.Namespace, model_path: Path, threads: int, decoder: DecodeWorker
    ) -> None:
        self.args = args
        # Bare decode loops (ceilings) run in their own process: see bench/_isolated.py.
        self.decoder = decoder
        self.model_path = model_path
        self.threads = threads
        self.sampling = Sampling(temperature=args.temperature)
        self.systems = ("ceiling", "sentiric", "llama_cpp") + (
            ("llama_server",) if args.llama_server else ()
        )
        self.figures: dict[int, dict[str, list[dict[str, float]]]] = {
            n: {system: [] for system in self.systems} for n in args.seqs
        }
        self.prefix: list[dict[str, float]] = []
        # system -> one dict per round: a burst of streams opening with one new system prompt.
        self.burst: dict[str, list[dict[str, float]]] = {}
        self.loads: list[float] = []
        self.metrics_url: str | None = None  # our server's, once it runs

    async def server_wave(self, client: Chat, model: str, n: int, round_: int) -> Wave:
        shared, repeat = self.args.shared, self.args.repeat
        conversations: list[Messages] = [
            [{"role": "user", "content": user_message(round_, n, i, shared=shared, repeat=repeat)}]
            for i in range(n)
        ]
        async with asyncio.timeout(self.args.wave_timeout):
            return await _load.run_wave(
                client, model, conversations, max_tokens=self.args.tokens, sampling=self.sampling
            )

    async def measure(
        self, system: str, n: int, round_: int, clients: dict[str, tuple[Chat, str]]
    ) -> dict[str, float]:
        if system == "ceiling":
            # One run per round by default, like each server's one wave (see the module's
            # docstring); --ceiling-reps > 1 keeps the best, a stricter ceiling.
            rates, prefills = [], []
            for _ in range(self.args.ceiling_reps):
                rates.append(
                    await self.decoder.run(
                        measure_ceiling, self.model_path, n, self.args.tokens, self.threads
                    )
                )
                prefills.append(
                    await self.decoder.run(
                        measure_prefill,
                        self.model_path,
                        n,
                        PREFILL_PROMPT_TOKENS,
                        self.threads,
                        context_size=CONTEXT_SIZE,
                        batch_size=BATCH_SIZE,
                    )
                )
            rate, prefill = max(rates), max(prefills)
            return {
                "tokens_per_s": rate,
                "tokens": n * self.args.tokens,
                "prefill_tokens_per_s": prefill,
            }
        client, model = clients[system]
        steps_before = await self.read_step_seconds(system)
        wave = await self.server_wave(client, model, n, round_)
        steps_after = await self.read_step_seconds(system)
        result = {
            "tokens_per_s": wave.tokens_per_s,
            "ttft_p50_s": wave.ttft(50),
            "ttft_p95_s": wave.ttft(95),
            "tokens": wave.tokens,
            "full_streams": sum(r.tokens >= self.args.tokens for r in wave.results),
            "wall_s": wave.wall,
        }
        optional = {
            "decode_tokens_per_s": wave.decode_tokens_per_s if system == "sentiric" else None,
            "stream_tokens_per_s": wave.stream_tokens_per_s,
            "prompt_tokens": wave.prompt_tokens,
            "cached_tokens": wave.cached_tokens,
        }
        result.update({key: value for key, value in optional.items() if value is not None})
        if steps_before and steps_after:
            # Where our server's scheduler spent the wave: inside llama_decode, sampling, or
            # elsewhere (its own Python, waiting for requests, the GIL).
            for key, sample in STEP_SAMPLES.items():
                result[key] = (steps_after[sample] - steps_before[sample]) / wave.wall
        return result

    async def read_step_seconds(self, system: str) -> dict[str, float] | None:
        if system != "sentiric" or self.metrics_url is None:
            return None
        return await asyncio.to_thread(
            _load.read_samples, self.metrics_url, list(STEP_SAMPLES.values())
        )

    async def prefix_round(self, client: Chat, model: str, metrics_url: str) -> None:
        rep = len(self.prefix)
        tag = f"{os.getpid()}-{rep}-{time.time_ns()}"
        system, system_tokens = await asyncio.to_thread(
            system_prompt, self.model_path, tag, PREFIX_TOKENS
        )

        async def ttft(question: str) -> _load.StreamResult:
            messages = [
                {"role": "system", "content": system},
                {"role": "user", "content": question},
            ]
            async with asyncio.timeout(self.args.wave_timeout):
                return await _load.stream_chat(
                    client, model, messages, max_tokens=8, sampling=self.sampling
                )

        miss = await ttft("What does rule 3 say? Answer in one sentence.")
        counter = "sentiric_llm_prefix_cache_tokens"
        before = await asyncio.to_thread(_load.read_counter, metrics_url, counter)
        hit = await ttft("Which section of the manual covers product line 12?")
        reused = await asyncio.to_thread(_load.read_counter, metrics_url, counter) - before
        figures = {
            "system_tokens": system_tokens,
            "miss_ttft_s": miss.ttft,
            "hit_ttft_s": hit.ttft,
            "hit_over_miss": hit.ttft / miss.ttft,
            "miss_prompt_tokens": float(miss.prompt_tokens or 0),
            "miss_cached_tokens": float(miss.cached_tokens or 0),
            "hit_cached_tokens": float(hit.cached_tokens or 0),
            "hit_prefix_cache_tokens_metric": reused,
        }
        self.prefix.append(figures)
        log(
            f"  prefix rep {rep + 1}: miss {miss.ttft * 1000:6.0f} ms "
            f"(prompt {miss.prompt_tokens}, cached {miss.cached_tokens}) | hit "
            f"{hit.ttft * 1000:6.0f} ms (cached {hit.cached_tokens}, metric +{reused:.0f})"
        )

    async def burst_round(self, system: str, client: Chat, model: str) -> None:
        """N streams at once, all opening with one ~1,000-token system prompt nobody cached.

        What a phone assistant sees when a wave of calls starts: the shared prompt should be
        evaluated once, not once per stream. Each server gets its own new system prompt.
        """
        n = max(self.args.seqs)
        tag = f"burst-{system}-{os.getpid()}-{time.time_ns()}"
        prompt, tokens = await asyncio.to_thread(system_prompt, self.model_path, tag, PREFIX_TOKENS)
        conversations: list[Messages] = [
            [
                {"role": "system", "content": prompt},
                {"role": "user", "content": f"Caller {i + 1}: what does rule {i + 2} say?"},
            ]
            for i in range(n)
        ]
        async with asyncio.timeout(self.args.wave_timeout):
            wave = await _load.run_wave(
                client, model, conversations, max_tokens=8, sampling=self.sampling
            )
        figures = {
            "streams": float(n),
            "system_tokens": float(tokens),
            "ttft_p50_s": wave.ttft(50),
            "ttft_p95_s": wave.ttft(95),
        }
        if wave.prompt_tokens is not None and wave.cached_tokens is not None:
            figures["prompt_tokens"] = float(wave.prompt_tokens)
            figures["cached_tokens"] = float(wave.cached_tokens)
        self.burst.setdefault(system, []).append(figures)
        cached = f", {wave.cached_tokens} of {wave.prompt_tokens} prompt tokens cached"
        log(
            f"  burst of {n} ({tokens}-token system prompt) {system:12} TTFT p50 "
            f"{figures['ttft_p50_s'] * 1000:6.0f} ms  p95 {figures['ttft_p95_s'] * 1000:6.0f} ms"
            + (cached if "cached_tokens" in figures else "")
        )

    async def run(self) -> None:
        args = self.args
        parallel = max(args.seqs)
        log(
            f"starting sentiric-llm serve (parallel {parallel}) and {', '.join(self.systems[2:])} ..."
        )
        with contextlib.ExitStack() as servers:
            ours = servers.enter_context(
                running_server(
                    self.model_path,
                    parallel=parallel,
                    context_size=CONTEXT_SIZE,
                    extra_config={
                        "engine": {
                            "threads": self.threads,
                            "gpuLayers": -1,
                            "batchSize": BATCH_SIZE,
                            "flashAttention": "auto",
                            "kvLayout": args.kv_layout,
                        }
                    },
                )
            )
            self.metrics_url = ours.metrics_url
            urls = {
                "sentiric": ours.openai_base_url,
                "llama_cpp": servers.enter_context(
                    _load.llama_cpp_server(
                        self.model_path,
                        context_size=CONTEXT_SIZE,
                        threads=self.threads,
                        batch_size=BATCH_SIZE,
                        alias=self.model_path.stem,
                    )
                ),
            }
            if args.llama_server:
                urls["llama_server"] = servers.enter_context(
                    _load.llama_server(
                        args.llama_server,
                        self.model_path,
                        parallel=parallel,
                        context_size=CONTEXT_SIZE,
                        threads=self.threads,
                        batch_size=BATCH_SIZE,
                        alias=self.model_path.stem,
                        unified=(args.llama_server_kv_layout or args.kv_layout) == "unified",
                    )
                )
            async with contextlib.AsyncExitStack() as stack:
                clients: dict[str, tuple[Chat, str]] = {}
                for system, url in urls.items():
                    listing = await stack.enter_async_context(
                        _load.openai_client(url, args.request_timeout)
                    )
                    model = await _load.model_id(listing)
                    chat: Chat = listing
                    if args.client == "sse":
                        chat = await stack.enter_async_context(
                            _load.SSEChat(url, args.request_timeout)
                        )
                    clients[system] = (chat, model)
                await self.warm_up(clients)
                systems = self.systems
                for round_ in range(args.rounds):
                    self.loads.append(os.getloadavg()[0])
                    log(f"round {round_ + 1}/{args.rounds} (load average {self.loads[-1]:.2f})")
                    for k, n in enumerate(args.seqs):
                        shift = (round_ + k) % len(systems)
                        for system in systems[shift:] + systems[:shift]:
                            with _naming_failures(f"N={n} {system}"):
                                result = await self.measure(system, n, round_, clients)
                            self.figures[n][system].append(result)
                            log(f"  N={n} {system:12} {describe(result, args.tokens)}")
                    if not args.no_prefix:
                        await self.prefix_round(
                            clients["sentiric"][0], clients["sentiric"][1], ours.metrics_url
                        )
                        for system, (client, model) in clients.items():
                            await self.burst_round(system, client, model)
                self.loads.append(os.getloadavg()[0])

    async def warm_up(self, clients: dict[str, tuple[Chat, str]]) -> None:
        """Page the model in everywhere, so no first round pays for it."""
        await self.decoder.run(measure_ceiling, self.model_path, 1, 8, self.threads)
        for system, (client, model) in clients.items():
            with _naming_failures(f"warm-up of {system}"):
                await _load.stream_chat(
                    client,
                    model,
                    [{"role": "user", "content": "Say hello."}],
                    max_tokens=8,
                    sampling=self.sampling,
                )
                if self.args.repeat:
                    # Every round then measures the steady state of a fixed prompt list (its
                    # prompts seen before), not the first wave that evaluates them.
                    await self.server_wave(client, model, max(self.args.seqs), round_=0)


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@contextlib.contextmanager
def _naming_failures(what: str) -> Iterator[None]:
    """Say which server's wave failed; the traceback of a task group does not."""
    try:
        yield
    except Exception as error:
        log(f"{what} failed: {error!r}")
        raise


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="default: embedded SmolLM2")
    parser.add_argument("--seqs", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--tokens", type=int, default=64, help="max_tokens per stream")
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--threads", type=int, default=0, help="0 = one per core")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="one round (smoke run)")
    parser.add_argument(
        "--ceiling-reps",
        type=int,
        default=1,
        help="ceiling runs per round; the best counts (default 1: sampled like the servers)",
    )
    parser.add_argument("--no-prefix", action="store_true", help="skip the prefix and burst tests")
    parser.add_argument(
        "--shared",
        action="store_true",
        help="all streams of a wave send one message (default: a different one each)",
    )
    parser.add_argument(
        "--repeat",
        action="store_true",
        help="stream i sends the same message in every wave and round (a fixed prompt list); "
        "default: messages new to each wave",
    )
    parser.add_argument(
        "--llama-server",
        type=Path,
        default=_load.default_llama_server(),
        help="llama.cpp's C++ server binary (default: hack/llama-server.sh's, if built)",
    )
    parser.add_argument(
        "--client",
        choices=("sse", "openai"),
        default="sse",
        help="load client: a thin aiohttp SSE reader (default) or the official openai client",
    )
    parser.add_argument("--no-llama-server", action="store_true", help="leave the C++ server out")
    parser.add_argument(
        "--kv-layout",
        choices=["unified", "streams"],
        default="unified",
        help="ours' engine.kvLayout, and llama-server's matching --kv-unified or not",
    )
    parser.add_argument(
        "--llama-server-kv-layout",
        choices=["unified", "streams"],
        default=None,
        help="llama-server's own layout instead of --kv-layout's (its default is streams: "
        "each server at its default is --kv-layout unified --llama-server-kv-layout streams)",
    )
    # llama_cpp.server answers one request at a time, so the last of N waits for all others.
    parser.add_argument("--request-timeout", type=float, default=300.0, help="seconds")
    parser.add_argument("--wave-timeout", type=float, default=600.0, help="seconds")
    parser.add_argument("--json", type=Path, default=None, help="also write figures here")
    args = parser.parse_args()
    if args.quick:
        args.rounds = 1
    if args.no_llama_server:
        args.llama_server = None
    if args.repeat and not args.no_prefix:
        # Their ~1,000-token prompts would take every slot and evict the list between rounds.
        parser.error("--repeat measures a warm prompt list: add --no-prefix")
    if min(args.rounds, args.ceiling_reps, *args.seqs, args.tokens) < 1:
        parser.error("--rounds, --ceiling-reps, --seqs and --tokens must be positive")
    # llama.cpp's load-time warnings from the in-process ceiling would bury the figures.
    logging.basicConfig(level=logging.ERROR)
    # SIGTERM (timeout, kill) unwinds like Ctrl-C, so both servers are stopped by pid.
    signal.signal(signal.SIGTERM, _interrupt)
    model_path = args.model or embedded_model_path()
    with contextlib.closing(DecodeWorker()) as decoder:
        bench = Bench(args, model_path, resolve_threads(args.threads), decoder)
        try:
            asyncio.run(bench.run())
        except KeyboardInterrupt:
            log("interrupted; every server and the ceiling process were stopped")
            return 130
    meta = {
        "model": model_path.name,
        "threads": bench.threads,
        "cpus": os.cpu_count(),
        "tokens_per_stream": args.tokens,
        "temperature": args.temperature,
        "workload": ("shared" if args.shared else "unique")
        + (" (repeated every wave)" if args.repeat else "")
        + f", KV layout {args.kv_layout}"
        + (
            f" (llama-server: {args.llama_server_kv_layout})"
            if args.llama_server_kv_layout not in (None, args.kv_layout)
            else ""
        ),
        "client": args.client,
        "rounds": args.rounds,
        "ceiling_reps": args.ceiling_reps,
        "load_average_per_round": bench.loads,
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
    }
    summary = summarise(bench.figures, bench.prefix, meta, burst=bench.burst)
    print_report(summary)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
