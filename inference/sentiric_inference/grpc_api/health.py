"""grpc.health.v1 statuses that follow the model's readiness."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Final

from grpc_health.v1 import health, health_pb2

logger = logging.getLogger(__name__)

SERVING: Final = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING: Final = health_pb2.HealthCheckResponse.NOT_SERVING


class Readiness:
    """Publishes NOT_SERVING until the model is ready, then SERVING, for each service name.

    "" (the whole server) and the LlamaService name are both covered, so a Kubernetes
    gRPC probe and a client checking the service itself agree.
    """

    def __init__(self, services: tuple[str, ...], is_ready: Callable[[], bool]) -> None:
        self.servicer = health.aio.HealthServicer()
        self._services = ("", *services)
        self._is_ready = is_ready
        self._published: bool | None = None

    async def publish(self, ready: bool) -> None:
        """Set every service to SERVING or NOT_SERVING (no-op when unchanged)."""
        if ready == self._published:
            return
        status = SERVING if ready else NOT_SERVING
        for service in self._services:
            await self.servicer.set(service, status)
        self._published = ready
        logger.info("gRPC health is now %s", "SERVING" if ready else "NOT_SERVING")

    async def follow(self, interval: float = 0.05) -> None:
        """Mirror is_ready() into the health statuses until cancelled.

        Polling a bool every 50 ms costs nothing and keeps health within one interval of
        /ready, without the engine having to know about gRPC.
        """
        while True:
            await self.publish(self._is_ready())
            await asyncio.sleep(interval)

    async def shut_down(self) -> None:
        """NOT_SERVING for good: load balancers drain this server before it stops."""
        await self.servicer.enter_graceful_shutdown()
        self._published = False
