"""The gRPC API: sentiric.llm.v1.LlamaService, grpc.health.v1, reflection, optional mTLS.

The server is built by `sentiric_inference.grpc_api.server.create_grpc_server`. Nothing is
imported here, so the client (which needs only `grpc_api.gen`) stays free of the server's
dependencies.
"""
