"""sentiric-llm inference server: a continuous-batching llama.cpp engine behind gRPC and HTTP."""

__version__ = "0.1.0"
