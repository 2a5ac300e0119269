"""spec.auth: the API key Secret mounted for the server only, its path and the per-key limits
in engine.yaml, and the rules that refuse limits without keys (spec model and CRD)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from operator_samples import MINIMAL_SPEC, merge, profile
from sentiric_inference.config import load_config
from sentiric_operator import builders
from sentiric_operator.errors import InvalidProfileError
from sentiric_operator.specs import parse_spec
from test_operator_crd import llmp, problems

IMAGES = builders.InferenceImages(cpu="registry.example/inf:1", cuda="registry.example/inf:1-cuda")
AUTH = {
    "apiKeySecretRef": {"name": "llm-keys", "key": "keys.txt"},
    "perKey": {"requestsPerMinute": 60, "tokensPerMinute": 20000, "maxConcurrent": 4},
}


def _pod(override: dict[str, Any]) -> dict[str, Any]:
    pod: dict[str, Any] = builders.deployment(profile(override), images=IMAGES)["spec"]["template"][
        "spec"
    ]
    return pod


def _mounts(pod: dict[str, Any], key: str, name: str) -> dict[str, str]:
    container = next(c for c in pod[key] if c["name"] == name)
    return {m["name"]: m["mountPath"] for m in container["volumeMounts"]}


def test_the_key_file_path_and_limits_reach_engine_yaml(tmp_path: Path) -> None:
    path = tmp_path / "engine.yaml"
    path.write_text(builders.configmap(profile({"auth": AUTH}))["data"]["engine.yaml"])
    auth = load_config(path).server.auth
    assert str(auth.api_keys_file) == "/var/run/sentiric/api-keys/keys.txt"
    assert (
        auth.per_key.requests_per_minute,
        auth.per_key.tokens_per_minute,
        auth.per_key.max_concurrent,
    ) == (60, 20000, 4)


def test_the_secret_is_mounted_whole_for_the_server_only() -> None:
    pod = _pod({"auth": AUTH})
    volumes = {v["name"]: v for v in pod["volumes"]}
    # No items and no subPath: the kubelet's update of a rotated Secret reaches the file.
    assert volumes["api-keys"] == {"name": "api-keys", "secret": {"secretName": "llm-keys"}}
    assert _mounts(pod, "containers", "inference")["api-keys"] == "/var/run/sentiric/api-keys"
    assert "api-keys" not in _mounts(pod, "initContainers", "download")
    serve = next(c for c in pod["containers"] if c["name"] == "inference")
    assert all("subPath" not in m for m in serve["volumeMounts"])


def test_probes_stay_on_the_open_paths_with_keys_on() -> None:
    serve = next(c for c in _pod({"auth": AUTH})["containers"] if c["name"] == "inference")
    probes = [serve[p]["httpGet"] for p in ("startupProbe", "readinessProbe", "livenessProbe")]
    # The kubelet sends no key: the probes must stay on paths the server keeps open.
    assert {probe["path"] for probe in probes} == {"/ready", "/health"}
    assert all("httpHeaders" not in probe for probe in probes)


def test_without_auth_nothing_is_mounted_and_no_key_file_is_set(tmp_path: Path) -> None:
    pod = _pod({})
    assert "api-keys" not in {v["name"] for v in pod["volumes"]}
    path = tmp_path / "engine.yaml"
    path.write_text(builders.configmap(profile({}))["data"]["engine.yaml"])
    assert load_config(path).server.auth.api_keys_file is None


def test_the_secret_key_defaults_to_keys(tmp_path: Path) -> None:
    path = tmp_path / "engine.yaml"
    p = profile({"auth": {"apiKeySecretRef": {"name": "llm-keys"}}})
    path.write_text(builders.configmap(p)["data"]["engine.yaml"])
    assert str(load_config(path).server.auth.api_keys_file) == "/var/run/sentiric/api-keys/keys"


def test_limits_without_keys_are_refused_by_the_spec_model() -> None:
    with pytest.raises(InvalidProfileError, match=r"spec\.auth: .*set auth\.apiKeySecretRef"):
        parse_spec(merge(MINIMAL_SPEC, {"auth": {"perKey": {"maxConcurrent": 2}}}))


@pytest.mark.parametrize(
    ("auth", "message"),
    [
        ({"perKey": {"maxConcurrent": 2}}, "set auth.apiKeySecretRef"),
        ({"perKey": {"requestsPerMinute": 10}}, "set auth.apiKeySecretRef"),
        ({"apiKeySecretRef": {"key": "keys"}}, "name"),
        ({"apiKeySecretRef": {"name": "k", "key": "a/b"}}, "does not match"),
        ({"perKey": {"tokensPerMinute": -1}, "apiKeySecretRef": {"name": "k"}}, "minimum"),
    ],
)
def test_the_crd_refuses(auth: dict[str, Any], message: str) -> None:
    found = problems(llmp(merge(MINIMAL_SPEC, {"auth": auth})))
    assert found and any(message in f for f in found), found


def test_the_crd_accepts_keys_with_and_without_limits() -> None:
    assert problems(llmp(merge(MINIMAL_SPEC, {"auth": AUTH}))) == []
    assert problems(llmp(merge(MINIMAL_SPEC, {"auth": {"apiKeySecretRef": {"name": "k"}}}))) == []
    assert parse_spec(merge(MINIMAL_SPEC, {"auth": AUTH})).auth.per_key.max_concurrent == 4
