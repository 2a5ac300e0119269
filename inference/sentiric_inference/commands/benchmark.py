"""`sentiric-llm benchmark`: load a LlamaService endpoint and report TTFT and tokens/s."""

from __future__ import annotations

import argparse
import json
import sys

from sentiric_inference.commands.generate import (
    add_connection_args,
    add_sampling_args,
    options_from_args,
    tls_from_args,
)

DEFAULT_PROMPT = "Explain in a few sentences why the sky is blue."


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "benchmark",
        help="measure TTFT and tokens/s of a running server over gRPC",
        description="Send --requests GenerateStream calls, --concurrent at a time; report TTFT "
        "p50/p95/p99, per-stream and aggregate tokens/s and errors by status code.",
    )
    parser.add_argument("--concurrent", type=_positive, default=4, help="streams in flight")
    parser.add_argument("--requests", type=_positive, default=32, help="calls in total")
    parser.add_argument("--prompt", default=DEFAULT_PROMPT, help="user prompt of every call")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    add_connection_args(parser)
    add_sampling_args(parser)
    parser.set_defaults(run=run, max_tokens=128)


def run(args: argparse.Namespace) -> int:
    import asyncio

    from tqdm import tqdm

    from sentiric_inference.client.benchmarking import run_load

    try:
        options = options_from_args(args)
        tls = tls_from_args(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with tqdm(
        total=args.requests,
        desc="requests",
        unit="req",
        file=sys.stderr,
        disable=args.no_progress,
    ) as progress:
        report = asyncio.run(
            run_load(
                args.target,
                args.prompt,
                options,
                concurrent=args.concurrent,
                requests=args.requests,
                tls=tls,
                api_key=args.api_key,
                timeout=args.timeout,
                on_done=lambda _sample: progress.update(1),
            )
        )
    if args.json:
        print(json.dumps({"target": args.target, **report.as_dict()}, indent=2))
    else:
        print(report.format_text())
    # Non-zero when any request failed, so scripts and CI notice.
    return 1 if report.errors else 0
