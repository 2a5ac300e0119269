"""Build the gRPC server: LlamaService, health, reflection, optional mTLS (docs/grpc-api.md)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Final

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from sentiric_inference.grpc_api.auth import require_api_key
from sentiric_inference.grpc_api.gen import llama_pb2
from sentiric_inference.grpc_api.health import Readiness
from sentiric_inference.grpc_api.protocol import parse_request
from sentiric_inference.grpc_api.servicer import LlamaServicer
from sentiric_inference.grpc_api.tls import server_credentials

if TYPE_CHECKING:
    from sentiric_inference.config import EngineConfig, LimitsSettings
    from sentiric_inference.metrics import Metrics
    from sentiric_inference.serving.access import Access
    from sentiric_inference.serving.service import Serving

logger = logging.getLogger(__name__)

SERVICE_NAME: Final[str] = llama_pb2.DESCRIPTOR.services_by_name["LlamaService"].full_name
HEALTH_SERVICE_NAME: Final[str] = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name

_OPTIONS: Final = (
    # Two servers must never share a port silently (tests start several on one host).
    ("grpc.so_reuseport", 0),
    # Long-lived client channels ping to keep connections through idle proxies; allow it.
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    # A connection is asked to go away (GOAWAY) after 5 minutes; streams on it run on (no
    # age grace is set). The client reconnects and resolves its target again, so round-robin
    # clients of a headless Service find replicas added since they connected.
    ("grpc.max_connection_age_ms", 300_000),
)


def _options(limits: LimitsSettings) -> tuple[tuple[str, int], ...]:
    return (
        *_OPTIONS,
        # A larger request is refused with RESOURCE_EXHAUSTED before it is read into memory.
        ("grpc.max_receive_message_length", limits.max_body_bytes),
        # A connection that never finishes its (TLS and HTTP/2) handshake is dropped.
        ("grpc.server_handshake_timeout_ms", int(limits.read_timeout_seconds * 1000)),
    )


def _add_llama_service(servicer: LlamaServicer, server: grpc.aio.Server, access: Access) -> None:
    """llama_pb2_grpc's registration, with a request deserializer that cannot raise.

    A request that does not parse (garbage, invalid UTF-8) reaches the servicer as an
    UndecodableRequest and is refused with INVALID_ARGUMENT; gRPC's own handling of a
    deserializer error answers UNKNOWN. With API keys on, every method checks the caller's
    key first (grpc_api/auth.py).
    """
    handlers = {
        "GenerateStream": grpc.unary_stream_rpc_method_handler(
            servicer.GenerateStream,
            request_deserializer=parse_request,
            response_serializer=llama_pb2.GenerateStreamResponse.SerializeToString,
        )
    }
    handlers = require_api_key(handlers, access)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
    server.add_registered_method_handlers(SERVICE_NAME, handlers)


class GrpcServer:
    """The gRPC side of one inference process: start it, then stop it on shutdown."""

    def __init__(self, server: grpc.aio.Server, port: int, readiness: Readiness) -> None:
        self.server = server
        # The bound port (equals server.grpcPort from the config).
        self.port = port
        self.readiness = readiness
        self._follow: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Serve, with health NOT_SERVING until the serving layer reports ready."""
        await self.readiness.publish(False)
        await self.server.start()
        self._follow = asyncio.create_task(self.readiness.follow(), name="grpc-health")

    async def stop(self, grace: float | None = 5.0) -> None:
        """Report NOT_SERVING, let running streams finish for `grace` seconds, then stop."""
        if self._follow is not None:
            self._follow.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follow
            self._follow = None
        await self.readiness.shut_down()
        await self.server.stop(grace)


def create_grpc_server(serving: Serving, config: EngineConfig, metrics: Metrics) -> GrpcServer:
    """The server with every service registered and its port bound, not yet started.

    Raises TLSFileError when configured certificate files cannot be read, and RuntimeError
    when the port cannot be bound.
    """
    settings = config.server
    server = grpc.aio.server(
        options=_options(settings.limits),
        # More concurrent calls are refused with RESOURCE_EXHAUSTED.
        maximum_concurrent_rpcs=settings.limits.max_connections,
    )
    _add_llama_service(LlamaServicer(serving, metrics), server, serving.access)
    readiness = Readiness((SERVICE_NAME,), lambda: bool(serving.ready))
    health_pb2_grpc.add_HealthServicer_to_server(readiness.servicer, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, HEALTH_SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    address = f"{settings.host}:{settings.grpc_port}"
    if settings.tls is not None:
        port = server.add_secure_port(address, server_credentials(settings.tls))
        mode = "mTLS" if settings.tls.client_ca_file is not None else "TLS"
    else:
        port = server.add_insecure_port(address)
        mode = "plaintext"
    logger.info("gRPC listening on %s (%s)", address, mode)
    return GrpcServer(server, port, readiness)
