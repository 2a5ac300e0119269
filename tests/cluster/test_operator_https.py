"""spec.tls.https on a real API server: the field is stored (and defaulted off), and the
Deployment, Services and ServiceMonitor the builders make for it are accepted as written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from sentiric_operator import builders
from sentiric_operator.specs import parse_profile

from .conftest import Cluster
from .test_crd_validation import _with
from .test_operator_lifecycle import llmprofile_crd  # noqa: F401  (fixture)

IMAGES = builders.InferenceImages(
    cpu="registry.example/sentiric-llm-inference:1.2.3",
    cuda="registry.example/sentiric-llm-inference:1.2.3-cuda",
)


def _stored(cluster: Cluster, namespace: str, kind: str, name: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(
        cluster.kubectl("-n", namespace, "get", kind, name, "-o", "json").stdout
    )
    return out


def _dry_run(cluster: Cluster, namespace: str, manifest: dict[str, Any]) -> dict[str, Any]:
    """What the API server would store of `manifest` (server-side dry run, defaults filled)."""
    proc = cluster.kubectl(
        "-n",
        namespace,
        "apply",
        "--dry-run=server",
        "-o",
        "json",
        "-f",
        "-",
        input=yaml.safe_dump(manifest),
    )
    out: dict[str, Any] = json.loads(proc.stdout)
    return out


def test_https_profile_and_its_manifests_are_accepted(
    cluster: Cluster,
    llmprofile_crd: Path,  # noqa: F811
    namespace: str,
) -> None:
    cluster.install_servicemonitor_crd()
    cluster.kubectl(
        "-n",
        namespace,
        "apply",
        "-f",
        "-",
        input=yaml.safe_dump(_with({"tls": {"secretName": "srv"}}, name="grpc-tls")),
    )
    assert _stored(cluster, namespace, "llmp", "grpc-tls")["spec"]["tls"]["https"] is False

    body = _with(
        {
            "tls": {"secretName": "srv", "https": True},
            "monitoring": {"serviceMonitor": {"enabled": True}},
        },
        name="secure",
    )
    cluster.kubectl("-n", namespace, "apply", "-f", "-", input=yaml.safe_dump(body))
    stored = _stored(cluster, namespace, "llmp", "secure")
    assert stored["spec"]["tls"] == {"secretName": "srv", "https": True}
    profile = parse_profile(stored)

    deployment = _dry_run(cluster, namespace, builders.deployment(profile, images=IMAGES))
    serve = next(
        c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "inference"
    )
    assert {"name": "https", "containerPort": 16070, "protocol": "TCP"} in serve["ports"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert serve[probe]["httpGet"]["scheme"] == "HTTPS"
        assert serve[probe]["httpGet"]["port"] == "https"

    for manifest in (builders.service(profile), builders.headless_service(profile)):
        service = _dry_run(cluster, namespace, manifest)
        port = next(p for p in service["spec"]["ports"] if p["port"] == 16070)
        assert port["name"] == "https" and port["appProtocol"] == "https"
        assert port["targetPort"] == "https"

    monitor = _dry_run(cluster, namespace, builders.servicemonitor(profile))
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["scheme"] == "https" and endpoint["port"] == "https"
    assert endpoint["tlsConfig"] == {"insecureSkipVerify": True}
