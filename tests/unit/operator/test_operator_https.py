"""spec.tls.https: the manifests that serve and reach the HTTP port over TLS (pure builders).

What the API server stores of them: tests/cluster/test_crd_validation.py.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from operator_samples import MINIMAL_SPEC, merge, profile
from sentiric_inference.config import load_config
from sentiric_operator import builders
from sentiric_operator.specs import parse_spec
from test_operator_crd import llmp, problems

IMAGES = builders.InferenceImages(
    cpu="registry.example/sentiric-llm-inference:1.2.3",
    cuda="registry.example/sentiric-llm-inference:1.2.3-cuda",
)
HTTPS = {"tls": {"secretName": "srv", "https": True}}
GRPC_ONLY = {"tls": {"secretName": "srv"}}
MONITORED = {"monitoring": {"serviceMonitor": {"enabled": True}}}


def _serve(override: dict[str, Any]) -> dict[str, Any]:
    pod = builders.deployment(profile(override), images=IMAGES)["spec"]["template"]["spec"]
    found: dict[str, Any] = next(c for c in pod["containers"] if c["name"] == "inference")
    return found


def _probes(container: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        container[name]["httpGet"] for name in ("startupProbe", "readinessProbe", "livenessProbe")
    ]


def _http_port(service: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = next(p for p in service["spec"]["ports"] if p["port"] == 16070)
    return found


def test_https_reaches_the_engine_config(tmp_path: Path) -> None:
    path = tmp_path / "engine.yaml"
    path.write_text(builders.configmap(profile(HTTPS))["data"]["engine.yaml"])
    tls = load_config(path).server.tls
    assert tls is not None and tls.https is True
    assert str(tls.cert_file) == "/var/run/sentiric/tls/tls.crt"


@pytest.mark.parametrize("override", [{}, GRPC_ONLY])
def test_without_https_the_http_port_stays_plain(tmp_path: Path, override: dict[str, Any]) -> None:
    path = tmp_path / "engine.yaml"
    path.write_text(builders.configmap(profile(override))["data"]["engine.yaml"])
    tls = load_config(path).server.tls
    assert tls is None or tls.https is False
    container = _serve(override)
    assert {"name": "http", "containerPort": 16070, "protocol": "TCP"} in container["ports"]
    for probe in _probes(container):
        assert probe["port"] == "http" and "scheme" not in probe
    p = profile({**override, **MONITORED})
    for service in (builders.service(p), builders.headless_service(p)):
        port = _http_port(service)
        assert (port["name"], port["targetPort"], port["appProtocol"]) == ("http", "http", "http")
    (endpoint,) = builders.servicemonitor(p)["spec"]["endpoints"]
    assert endpoint == {"port": "http", "path": "/metrics", "interval": "15s"}
    assert builders.endpoints(p)["http"] == "http://chat.ai.svc:16070"


def test_probes_speak_https_to_the_named_port() -> None:
    container = _serve(HTTPS)
    assert {"name": "https", "containerPort": 16070, "protocol": "TCP"} in container["ports"]
    probes = _probes(container)
    assert [p["path"] for p in probes] == ["/ready", "/ready", "/health"]
    for probe in probes:
        assert probe["port"] == "https" and probe["scheme"] == "HTTPS"
    # The certificate is mounted where engine.yaml points.
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["tls"] == "/var/run/sentiric/tls"


def test_services_name_the_port_https_and_endpoints_say_so() -> None:
    p = profile(HTTPS)
    for service in (builders.service(p), builders.headless_service(p)):
        port = _http_port(service)
        assert (port["name"], port["targetPort"], port["appProtocol"]) == (
            "https",
            "https",
            "https",
        )
        # gRPC is unchanged (its TLS never depended on the flag).
        grpc = next(p for p in service["spec"]["ports"] if p["port"] == 16071)
        assert grpc["name"] == "grpc"
    assert builders.endpoints(p)["http"] == "https://chat.ai.svc:16070"


def test_service_monitor_scrapes_over_https() -> None:
    (endpoint,) = builders.servicemonitor(profile({**HTTPS, **MONITORED}))["spec"]["endpoints"]
    assert endpoint == {
        "port": "https",
        "path": "/metrics",
        "interval": "15s",
        "scheme": "https",
        "tlsConfig": {"insecureSkipVerify": True},
    }


def test_crd_accepts_https_and_defaults_it_off() -> None:
    assert problems(llmp(merge(MINIMAL_SPEC, {**HTTPS}))) == []
    spec = parse_spec(merge(MINIMAL_SPEC, GRPC_ONLY))
    assert spec.tls is not None and spec.tls.https is False and spec.https is False
    assert parse_spec(merge(MINIMAL_SPEC, HTTPS)).https is True


@pytest.mark.parametrize(
    ("tls", "path"),
    [
        ({"secretName": "srv", "https": "yes"}, "spec.tls.https"),
        # HTTPS needs the certificate: https alone is refused like clientCASecretName alone.
        ({"https": True}, "tls.secretName is required"),
    ],
)
def test_crd_refuses_bad_https(tls: dict[str, Any], path: str) -> None:
    spec = copy.deepcopy(MINIMAL_SPEC)
    spec["tls"] = tls
    found = problems(llmp(spec))
    assert found and path in found[0], found
