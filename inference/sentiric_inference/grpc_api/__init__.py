"""The gRPC API: sentiric.llm.v1.LlamaService, grpc.health.v1, reflection, optional mTLS."""

from __future__ import annotations

from sentiric_inference.grpc_api.server import (
    HEALTH_SERVICE_NAME,
    SERVICE_NAME,
    GrpcServer,
    create_grpc_server,
)

__all__ = ["HEALTH_SERVICE_NAME", "SERVICE_NAME", "GrpcServer", "create_grpc_server"]
