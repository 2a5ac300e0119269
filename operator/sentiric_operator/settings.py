"""Operator settings from the environment (the Helm chart sets these on the Deployment)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_IMAGE = "ghcr.io/sentiric/sentiric-llm-inference:0.1.0"
# inference/Dockerfile.cuda, pushed to the same repository with the tag suffixed "-cuda"
# (docs/kubernetes.md, "Build and push the images").
DEFAULT_CUDA_IMAGE = f"{DEFAULT_IMAGE}-cuda"


def _float(env: Mapping[str, str], key: str, default: float, minimum: float) -> float:
    raw = env.get(key, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{key} must be a number of seconds, got {raw!r}") from None
    if value < minimum:
        raise ValueError(f"{key} must be at least {minimum}, got {raw!r}")
    return value


def _int(env: Mapping[str, str], key: str, default: int, minimum: int, maximum: int) -> int:
    raw = env.get(key, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not minimum <= int(raw) <= maximum:
        raise ValueError(f"{key} must be an integer in [{minimum}, {maximum}], got {raw!r}")
    return int(raw)


@dataclass(frozen=True)
class OperatorSettings:
    """Everything configurable about the operator process."""

    # Image of the inference pods when a profile names none and asks for no GPU.
    inference_image: str = DEFAULT_IMAGE
    # The same when the profile asks for a GPU (resources.gpu > 0): llama.cpp built with CUDA.
    inference_image_cuda: str = DEFAULT_CUDA_IMAGE
    # Empty: watch every namespace (cluster-wide).
    namespaces: tuple[str, ...] = ()
    # How often status is recomputed from the indexed children (in memory, no API call
    # unless it changed).
    status_interval_s: float = 5.0
    # How often every child is re-applied, repairing drift such as a hand-edited Service.
    resync_interval_s: float = 60.0
    # Retry delay after a failed API call.
    retry_delay_s: float = 10.0
    log_format: str = "text"
    liveness_endpoint: str = "http://0.0.0.0:8080/healthz"
    metrics_port: int = 8081
    # Empty: standalone (no peering); set when running several operator replicas.
    peering_name: str = ""
    workers: int = 16

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OperatorSettings:
        """Read SENTIRIC_* variables; a bad value raises ValueError naming the variable."""
        env = os.environ if env is None else env
        namespaces = tuple(
            ns.strip() for ns in env.get("SENTIRIC_WATCH_NAMESPACES", "").split(",") if ns.strip()
        )
        log_format = env.get("SENTIRIC_LOG_FORMAT", "text").strip() or "text"
        if log_format not in ("text", "json"):
            raise ValueError(f"SENTIRIC_LOG_FORMAT must be text or json, got {log_format!r}")
        return cls(
            inference_image=env.get("SENTIRIC_INFERENCE_IMAGE", "").strip() or DEFAULT_IMAGE,
            inference_image_cuda=env.get("SENTIRIC_INFERENCE_IMAGE_CUDA", "").strip()
            or DEFAULT_CUDA_IMAGE,
            namespaces=namespaces,
            status_interval_s=_float(env, "SENTIRIC_STATUS_INTERVAL", 5.0, 0.5),
            resync_interval_s=_float(env, "SENTIRIC_RESYNC_INTERVAL", 60.0, 1.0),
            retry_delay_s=_float(env, "SENTIRIC_RETRY_DELAY", 10.0, 0.5),
            log_format=log_format,
            liveness_endpoint=env.get("SENTIRIC_LIVENESS_ENDPOINT", "").strip()
            or "http://0.0.0.0:8080/healthz",
            metrics_port=_int(env, "SENTIRIC_METRICS_PORT", 8081, 0, 65535),
            peering_name=env.get("SENTIRIC_PEERING_NAME", "").strip(),
            workers=_int(env, "SENTIRIC_WORKERS", 16, 1, 256),
        )
