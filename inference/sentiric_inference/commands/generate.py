"""`sentiric-llm generate`: stream one answer from a LlamaService endpoint to the terminal."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sentiric_inference.config import GRPC_PORT

if TYPE_CHECKING:
    from sentiric_inference.client import Completion, GenerationOptions, TLSOptions

DEFAULT_TARGET = f"127.0.0.1:{GRPC_PORT}"
# Where `generate` and `benchmark` read the server's API key when --api-key is not given.
API_KEY_ENV = "SENTIRIC_API_KEY"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "generate",
        help="stream an answer from a running server over gRPC",
        description="Send one GenerateStream request and stream the answer to stdout; the "
        "finish reason, token counts, TTFT and tokens/s go to stderr.",
    )
    parser.add_argument("prompt", help="the user prompt")
    parser.add_argument("--system", default="", help="request system prompt")
    parser.add_argument("--rag-context", default=None, help="facts for the profile's RAG template")
    parser.add_argument(
        "--turn",
        nargs=2,
        action="append",
        default=[],
        metavar=("ROLE", "TEXT"),
        help="an earlier conversation turn (repeatable, oldest first)",
    )
    parser.add_argument("--trace-id", default=None, help="sent as x-trace-id metadata")
    parser.add_argument(
        "--session",
        default=None,
        metavar="ID",
        help="conversation id, sent as x-session-id metadata: with a target of many endpoints "
        "(dns:///..., ipv4:a:p,b:p) every call of one session goes to the same endpoint "
        "(rendezvous hashing), so its prefix cache holds the conversation",
    )
    add_connection_args(parser)
    add_sampling_args(parser)
    parser.set_defaults(run=run)


def add_connection_args(parser: argparse.ArgumentParser) -> None:
    """--target, the TLS files and --timeout (shared with `benchmark`)."""
    parser.add_argument(
        "--target",
        default=DEFAULT_TARGET,
        help="gRPC target: host:port, or dns:///name:port (e.g. a profile's headless Service) or "
        "ipv4:a:port,b:port to spread calls over every endpoint",
    )
    parser.add_argument("--tls-ca", type=Path, default=None, help="CA that signed the server")
    parser.add_argument("--tls-cert", type=Path, default=None, help="client certificate (mTLS)")
    parser.add_argument("--tls-key", type=Path, default=None, help="client key (mTLS)")
    parser.add_argument(
        "--tls-server-name", default=None, help="name expected in the server certificate"
    )
    parser.add_argument(
        "--timeout", type=float, default=None, help="deadline per request, in seconds"
    )
    parser.add_argument(
        "--api-key",
        default=os.environ.get(API_KEY_ENV) or None,
        help=f"the server's API key, sent as 'authorization: Bearer <key>' metadata (default: "
        f"${API_KEY_ENV}); prefer the variable, since flags show up in process lists",
    )


def add_sampling_args(parser: argparse.ArgumentParser) -> None:
    """GenerationParams options (shared with `benchmark`); unset ones use the profile."""
    parser.add_argument("--max-tokens", type=int, default=None, help="max_new_tokens")
    parser.add_argument("--temperature", type=float, default=None)
    parser.add_argument("--top-k", type=int, default=None)
    parser.add_argument("--top-p", type=float, default=None)
    parser.add_argument("--repetition-penalty", type=float, default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--stop", action="append", default=[], help="stop sequence (repeatable)")
    parser.add_argument(
        "--engine-param",
        action="append",
        default=[],
        metavar="KEY=JSON",
        help="engine_specific_params entry, e.g. min_p=0.1 (repeatable)",
    )


def tls_from_args(args: argparse.Namespace) -> TLSOptions | None:
    """TLS options when any --tls-* flag was given, else None (plaintext)."""
    from sentiric_inference.client import TLSOptions

    if not any((args.tls_ca, args.tls_cert, args.tls_key, args.tls_server_name)):
        return None
    return TLSOptions(
        ca_file=args.tls_ca,
        cert_file=args.tls_cert,
        key_file=args.tls_key,
        server_name=args.tls_server_name,
    )


def options_from_args(args: argparse.Namespace) -> GenerationOptions:
    """GenerationOptions from the sampling flags; raises ValueError for a bad --engine-param."""
    from sentiric_inference.client import GenerationOptions

    engine: dict[str, Any] = {}
    for item in args.engine_param:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--engine-param {item!r}: expected KEY=JSON")
        try:
            engine[key] = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValueError(f"--engine-param {key}: {raw!r} is not JSON ({exc.msg})") from exc
    return GenerationOptions(
        max_new_tokens=args.max_tokens,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        repetition_penalty=args.repetition_penalty,
        stop_sequences=tuple(args.stop),
        seed=args.seed,
        engine_params=engine,
    )


def run(args: argparse.Namespace) -> int:
    import grpc

    from sentiric_inference.client import (
        CompletionRecorder,
        LlamaClient,
        NoEndpointError,
        TargetError,
        TextChunk,
        Turn,
    )

    try:
        options = options_from_args(args)
        tls = tls_from_args(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    history = [Turn(role=role, content=text) for role, text in args.turn]
    recorder = CompletionRecorder()
    completion = None
    try:
        with LlamaClient(args.target, tls=tls, api_key=args.api_key) as client:
            for event in client.stream(
                args.prompt,
                system_prompt=args.system,
                rag_context=args.rag_context,
                history=history,
                options=options,
                trace_id=args.trace_id,
                timeout=args.timeout,
                session=args.session,
            ):
                if isinstance(event, TextChunk):
                    sys.stdout.write(event.text)
                    sys.stdout.flush()
                completion = recorder.add(event)
    except grpc.RpcError as exc:
        # Every RpcError raised by a call is also a grpc.Call carrying code and details.
        code = exc.code().name if isinstance(exc, grpc.Call) else "UNKNOWN"
        details = exc.details() if isinstance(exc, grpc.Call) else str(exc)
        print(f"\nerror: {code}: {details}", file=sys.stderr)
        return 1
    except TargetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except NoEndpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print()
    if completion is None:
        print("error: the stream ended without finish_details", file=sys.stderr)
        return 1
    print(format_summary(completion), file=sys.stderr)
    return 1 if completion.finish.reason == "error" else 0


def format_summary(completion: Completion) -> str:
    """finish reason, token counts, TTFT and decode tokens/s on one line."""
    finish = completion.finish
    ttft = completion.time_to_first_token
    rate = completion.tokens_per_second
    return (
        f"finish_reason={finish.reason} prompt_tokens={finish.prompt_tokens} "
        f"completion_tokens={finish.completion_tokens} "
        f"ttft={'-' if ttft is None else f'{ttft * 1000:.1f}ms'} "
        f"tokens_per_s={'-' if rate is None else f'{rate:.1f}'} "
        f"total={completion.duration:.2f}s"
    )
