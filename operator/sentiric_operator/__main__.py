"""`sentiric-operator`: run the kopf operator with its liveness endpoint and Prometheus metrics."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

import kopf
from prometheus_client import start_http_server

from sentiric_operator.handlers import register
from sentiric_operator.metrics import OperatorMetrics
from sentiric_operator.settings import OperatorSettings

log = logging.getLogger("sentiric_operator")


class _QuietRoutine(logging.Filter):
    """Drop kopf's "succeeded" lines of routine handlers: the status and repair handlers see
    every event of every child."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = str(record.msg)
        routine = msg.startswith(("Handler 'repair-", "Handler 'status-"))
        return not (routine and msg.endswith("succeeded."))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sentiric-operator",
        description="Reconcile LLMProfile resources into inference Deployments. Configured by "
        "SENTIRIC_* environment variables (see docs/operator.md); flags override them.",
    )
    parser.add_argument("--verbose", action="store_true", help="log at DEBUG level")
    parser.add_argument("--log-format", choices=("text", "json"), help="SENTIRIC_LOG_FORMAT")
    parser.add_argument("--metrics-port", type=int, help="SENTIRIC_METRICS_PORT (0 disables)")
    parser.add_argument(
        "--liveness", help="SENTIRIC_LIVENESS_ENDPOINT, e.g. http://0.0.0.0:8080/healthz"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = OperatorSettings.from_env()
    except ValueError as exc:
        print(f"sentiric-operator: {exc}", file=sys.stderr)
        return 2
    log_format = args.log_format or settings.log_format
    kopf.configure(
        verbose=args.verbose,
        log_format=kopf.LogFormat.JSON if log_format == "json" else kopf.LogFormat.FULL,
    )
    if not args.verbose:
        logging.getLogger("kopf.objects").addFilter(_QuietRoutine())
    metrics = OperatorMetrics()
    port = settings.metrics_port if args.metrics_port is None else args.metrics_port
    if port:
        start_http_server(port, registry=metrics.registry)
    registry = kopf.OperatorRegistry()
    register(registry)
    log.info(
        "starting: namespaces=%s image=%s cuda image=%s metrics port=%s",
        ",".join(settings.namespaces) or "<cluster-wide>",
        settings.inference_image,
        settings.inference_image_cuda,
        port,
    )
    kopf.run(
        registry=registry,
        # The handlers' shared context; the startup handler adds the API module to it.
        memo=kopf.Memo(settings=settings, metrics=metrics),
        standalone=not settings.peering_name,
        peering_name=settings.peering_name or None,
        clusterwide=not settings.namespaces,
        namespaces=settings.namespaces,
        liveness_endpoint=args.liveness or settings.liveness_endpoint,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
