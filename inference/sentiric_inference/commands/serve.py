"""`sentiric-llm serve`: run the inference server (HTTP + gRPC) on one model."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sentiric_inference.app import Endpoints
    from sentiric_inference.config import EngineConfig

EXIT_CONFIG = 2


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the inference server",
        description="Serve one GGUF model over gRPC and OpenAI-compatible HTTP. With neither "
        "--config nor --model it serves the embedded SmolLM2-135M-Instruct.",
    )
    parser.add_argument("--config", type=Path, help="engine.yaml (as rendered by the operator)")
    parser.add_argument("--model", type=Path, help="GGUF file to serve (overrides model.path)")
    parser.add_argument("--host", help="address to listen on (server.host)")
    parser.add_argument("--http-port", type=int, help="HTTP port (server.httpPort, 16070)")
    parser.add_argument("--grpc-port", type=int, help="gRPC port (server.grpcPort, 16071)")
    parser.add_argument(
        "--parallel", type=int, help="parallel sequences (engine.parallel; 0 = automatic)"
    )
    parser.add_argument(
        "--context-size",
        type=int,
        help="tokens of context per sequence (engine.contextSize; 0 = automatic)",
    )
    parser.add_argument(
        "--api-key-file",
        type=Path,
        help="API keys, one per line as name:key or a bare key; every API call then needs "
        "'Authorization: Bearer <key>' (server.auth.apiKeysFile; re-read when it changes)",
    )
    parser.add_argument(
        "--shutdown-grace",
        type=float,
        default=25.0,
        help="seconds in-flight requests may run after SIGTERM (default 25)",
    )
    parser.set_defaults(run=run)


def _fail(message: str) -> int:
    print(f"sentiric-llm serve: {message}", file=sys.stderr)
    return EXIT_CONFIG


def _describe(error: dict[str, Any]) -> str:
    where = ".".join(str(part) for part in error.get("loc", ())) or "(top level)"
    return f"{where}: {error.get('msg', 'invalid')}"


def load_effective_config(args: argparse.Namespace) -> tuple[EngineConfig, Path]:
    """The config file plus command-line overrides, and the model file to load.

    Raises ValueError with a message naming the offending key or flag.
    """
    import yaml
    from pydantic import ValidationError

    from sentiric_inference.config import EngineConfig

    key_file = getattr(args, "api_key_file", None)
    if args.config is not None:
        try:
            raw = yaml.safe_load(args.config.read_text()) or {}
            if key_file is not None and isinstance(raw, dict):
                # Before validation: server.auth.perKey in the file needs a key file, and
                # this flag may be what gives it one.
                server = raw.setdefault("server", {}) or {}
                raw["server"] = server
                if isinstance(server, dict):
                    auth = server.setdefault("auth", {}) or {}
                    server["auth"] = auth
                    if isinstance(auth, dict):
                        auth["apiKeysFile"] = str(key_file)
            config = EngineConfig.model_validate(raw)
        except FileNotFoundError as exc:
            raise ValueError(f"config file {args.config} does not exist") from exc
        except yaml.YAMLError as exc:
            raise ValueError(f"{args.config} is not valid YAML: {exc}") from exc
        except ValidationError as exc:
            problems = "; ".join(_describe(dict(e)) for e in exc.errors())
            raise ValueError(f"{args.config} is invalid: {problems}") from exc
    else:
        config = EngineConfig()
    data = config.model_dump(by_alias=True, exclude_none=True, mode="json")
    overrides = {
        ("server", "host"): args.host,
        ("server", "httpPort"): args.http_port,
        ("server", "grpcPort"): args.grpc_port,
        ("engine", "parallel"): args.parallel,
        ("engine", "contextSize"): args.context_size,
    }
    for (section, key), value in overrides.items():
        if value is not None:
            data.setdefault(section, {})[key] = value
    if args.model is not None:
        data.setdefault("model", {})["path"] = str(args.model)
    if key_file is not None:
        data.setdefault("server", {}).setdefault("auth", {})["apiKeysFile"] = str(key_file)
    try:
        model_path = EngineConfig.model_validate(data).model.local_path()
        if model_path is None:
            model_path = _embedded(data)
        config = EngineConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(_describe(dict(e)) for e in exc.errors())
        raise ValueError(f"invalid command-line value: {problems}") from exc
    if not model_path.is_file():
        raise ValueError(f"model file {model_path} does not exist (model.path / --model)")
    return config, model_path


def _embedded(data: dict[str, Any]) -> Path:
    """Point the config at the embedded SmolLM2 (no config and no --model given)."""
    from sentiric_inference.models.embedded import EMBEDDED_ALIAS, embedded_model_path

    try:
        path = embedded_model_path()
    except FileNotFoundError as exc:
        raise ValueError(str(exc)) from exc
    model = data.setdefault("model", {})
    model["path"] = str(path)
    model.setdefault("alias", EMBEDDED_ALIAS)
    return path


def _banner(endpoints: Endpoints) -> None:
    key = "<a key from the API key file>" if endpoints.api_keys else "unused"
    print(
        f"sentiric-llm serving {endpoints.model_name}\n"
        f'  HTTP (OpenAI): {endpoints.http_url}/v1   e.g. OpenAI(base_url="{endpoints.http_url}/v1", api_key="{key}")\n'
        f"  gRPC:          {endpoints.grpc_target}   (sentiric.llm.v1.LlamaService)\n"
        f"  metrics:       {endpoints.metrics_url}\n"
        f"  readiness:     {endpoints.http_url}/ready (503 while the model loads)",
        flush=True,
    )


def run(args: argparse.Namespace) -> int:
    try:
        config, model_path = load_effective_config(args)
    except ValueError as exc:
        return _fail(str(exc))

    import asyncio

    from sentiric_inference.app import serve
    from sentiric_inference.logging_setup import configure_logging
    from sentiric_inference.serving.keys import KeyFileError
    from sentiric_inference.tls_files import TLSFileError

    configure_logging(config.server.log_format, config.server.log_level)
    try:
        return asyncio.run(
            serve(config, model_path, shutdown_grace=args.shutdown_grace, on_listening=_banner)
        )
    except OSError as exc:
        print(f"sentiric-llm serve: {exc}", file=sys.stderr)
        return 1
    except KeyFileError as exc:
        # Never serve without the keys the configuration asks for.
        return _fail(str(exc))
    except TLSFileError as exc:
        # Nor in plaintext, or with a certificate other than the one configured.
        return _fail(str(exc))
