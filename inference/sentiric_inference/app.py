"""One asyncio process: HTTP (uvicorn) and gRPC (grpc.aio) over one Engine and Serving.

/health and /ready answer from the first second; the model loads in a thread meanwhile.
SIGTERM (Kubernetes) or SIGINT stops accepting new work, lets in-flight streams finish
within the grace period, then closes the engine (which ends whatever is left).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import uvicorn

from sentiric_inference.config import EngineConfig
from sentiric_inference.metrics import Metrics
from sentiric_inference.serving.service import Serving, model_name_for

if TYPE_CHECKING:
    from sentiric_inference.engine.engine import Engine
    from sentiric_inference.grpc_api.server import GrpcServer

log = logging.getLogger(__name__)

DEFAULT_SHUTDOWN_GRACE_S = 25.0
# Seconds connections get, after the engine closed, to deliver their last bytes.
_CONNECTION_DRAIN_S = 5
# Prompt tokens an automatic context keeps room for beyond sampling.maxTokens.
MIN_PROMPT_ROOM = 512


@dataclass(frozen=True)
class Endpoints:
    """Where the process listens, for the start-up banner."""

    http_url: str
    grpc_target: str
    metrics_url: str
    model_name: str
    # Whether API calls need a key (server.auth.apiKeysFile).
    api_keys: bool = False


class _Uvicorn(uvicorn.Server):
    """uvicorn without its own signal handling: the app owns SIGTERM for both servers."""

    def install_signal_handlers(self) -> None:  # uvicorn < 0.29
        return

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # uvicorn >= 0.29
        yield


def _bind(host: str, port: int) -> socket.socket:
    # Binding here (not inside uvicorn) turns "address in use" into a clear error instead
    # of uvicorn calling sys.exit from inside a task.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must be IPPROTO_TCP, not 0: asyncio only disables Nagle on accepted sockets whose
    # proto says TCP, and with Nagle on, each SSE chunk after the headers waits for the
    # client's delayed ACK (a ~40 ms stall before the first token on a reused connection).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(
            exc.errno, f"cannot listen for HTTP on {host}:{port}: {exc.strerror}"
        ) from exc
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def _https_context(config: EngineConfig) -> ssl.SSLContext | None:
    """With server.tls.https, the HTTP port's TLS context; raises TLSFileError naming the key."""
    tls = config.server.tls
    if tls is None or not tls.https:
        return None
    from sentiric_inference.http.tls import server_context

    return server_context(tls)


def _display_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


async def serve(
    config: EngineConfig,
    model_path: Path,
    *,
    shutdown_grace: float = DEFAULT_SHUTDOWN_GRACE_S,
    on_listening: Callable[[Endpoints], None] | None = None,
) -> int:
    """Run until SIGTERM/SIGINT; returns the process exit code (1 if the model fails to load).

    Longer than 80 lines on purpose: the start-up order (certificates, plan, listeners,
    drain signal, model load) and the shutdown it pairs with read top to bottom in one
    place; the steps that stand alone are functions already (_shut_down, ...).
    """
    from sentiric_inference.engine.engine import Engine
    from sentiric_inference.grpc_api.server import create_grpc_server
    from sentiric_inference.http.app import create_app
    from sentiric_inference.http.connections import guarded_protocol

    settings = config.server
    # First, so unusable certificate files stop the start before anything is bound or loaded.
    https = _https_context(config)
    metrics = Metrics()
    engine = Engine(
        model_path,
        config.engine,
        metrics,
        model_name=model_name_for(config),
        # An automatic context never drops below the longest answer plus room for a prompt.
        min_context=config.sampling.max_tokens + MIN_PROMPT_ROOM,
        draft_model_path=(
            draft.local_path(config.model.cache_dir)
            if (draft := config.engine.draft_model) is not None
            else None
        ),
    )
    serving = Serving(engine, config, metrics)
    http_socket = _bind(settings.host, settings.http_port)
    grpc_server = create_grpc_server(serving, config, metrics)
    http_server = _Uvicorn(
        uvicorn.Config(
            create_app(serving, metrics),
            log_config=None,
            access_log=False,
            lifespan="off",
            # httptools with a deadline and a size bound on each request's headers.
            http=guarded_protocol(header_timeout=settings.limits.read_timeout_seconds),
            # Connections plus requests in flight; beyond it uvicorn answers 503.
            limit_concurrency=settings.limits.max_connections,
            # Longer than our own grace: when it runs out we close the engine first, so
            # streams still open get their final chunk before uvicorn drops connections.
            timeout_graceful_shutdown=int(shutdown_grace) + _CONNECTION_DRAIN_S,
            timeout_keep_alive=30,
            # uvicorn's hook for a ready-made context: ours swaps certificates on rotation.
            ssl_context_factory=None if https is None else (lambda _config, _default: https),
        )
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # SIGUSR1 (the pod's preStop hook) drains: /ready answers 503 and gRPC health says
    # NOT_SERVING while both listeners stay open, so the endpoint is removed everywhere
    # before SIGTERM closes them and nothing routed in those seconds is refused.
    loop.add_signal_handler(signal.SIGUSR1, _drain, serving)

    exit_code = 0
    await grpc_server.start()
    http_task = asyncio.create_task(http_server.serve(sockets=[http_socket]), name="http")
    load_task = asyncio.create_task(serving.start(), name="model-load")
    stop_task = asyncio.create_task(stop.wait(), name="stop-signal")
    host = _display_host(settings.host)
    scheme = "http" if https is None else "https"
    log.info("HTTP listening on %s:%d (%s)", settings.host, settings.http_port, scheme.upper())
    if on_listening is not None:
        on_listening(
            Endpoints(
                http_url=f"{scheme}://{host}:{settings.http_port}",
                grpc_target=f"{host}:{grpc_server.port}",
                metrics_url=f"{scheme}://{host}:{settings.http_port}/metrics",
                model_name=serving.model_name,
                api_keys=serving.access.enabled,
            )
        )
    log.info("loading model %s", model_path)
    try:
        pending: set[asyncio.Task[Any]] = {load_task, http_task, stop_task}
        while True:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if load_task in done:
                if load_task.exception() is not None:
                    log.error("model failed to load: %s", load_task.exception())
                    exit_code = 1
                    break
                log.info("model %s ready", serving.model_name)
                continue
            if http_task in done:
                log.error("the HTTP server stopped unexpectedly: %s", http_task.exception())
                exit_code = 1
            break
    finally:
        log.info("shutting down: grace period %.0fs", shutdown_grace)
        serving.drain()
        stop_task.cancel()
        await _shut_down(http_server, http_task, grpc_server, serving, engine, shutdown_grace)
        if not load_task.done():
            load_task.cancel()
            with contextlib.suppress(BaseException):
                await load_task
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):
            loop.remove_signal_handler(sig)
        # Everything is closed; what is left is the interpreter's exit. A repeated SIGTERM
        # (a supervisor or kubelet retrying) must not turn a clean exit 0 into death by signal.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        log.info("stopped")
    return exit_code


def _drain(serving: Serving) -> None:
    if not serving.draining:
        log.info("draining: not ready from now on, still serving until SIGTERM")
    serving.drain()


async def _shut_down(
    http_server: uvicorn.Server,
    http_task: asyncio.Task[None],
    grpc_server: GrpcServer,
    serving: Serving,
    engine: Engine,
    grace: float,
) -> None:
    """Stop accepting on both surfaces at once; in-flight requests get `grace` seconds.

    Whatever still runs after that is ended by closing the engine (finish reason
    `cancelled`), so every stream still gets a last message instead of a cut connection.
    """
    http_server.should_exit = True
    # gRPC cancels the calls still open when its grace ends (UNAVAILABLE, no last message);
    # the engine is closed at `grace`, so streams get their finish_details before that.
    stop_grpc = asyncio.create_task(grpc_server.stop(grace + _CONNECTION_DRAIN_S))
    try:
        await asyncio.wait_for(serving.wait_idle(), grace)
    except TimeoutError:
        log.warning(
            "%d request(s) still running after %.0fs; cancelling them", serving.active, grace
        )
    await engine.stop()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(asyncio.shield(http_task), timeout=_CONNECTION_DRAIN_S + 1)
    with contextlib.suppress(Exception):
        await stop_grpc
