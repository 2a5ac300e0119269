"""The API server itself refuses invalid LLMProfiles with the CRD's CEL and schema messages."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import Cluster
from .test_operator_lifecycle import llmprofile_crd  # noqa: F401  (fixture)

VALID: dict[str, Any] = {
    "apiVersion": "llm.sentiric.ai/v1alpha1",
    "kind": "LLMProfile",
    "metadata": {"name": "probe"},
    "spec": {
        "model": {
            "huggingFace": {
                "repo": "Qwen/Qwen2.5-0.5B-Instruct-GGUF",
                "file": "qwen2.5-0.5b-instruct-q4_k_m.gguf",
            }
        }
    },
}


def _with(spec: dict[str, Any], name: str = "probe") -> dict[str, Any]:
    def merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(a)
        for k, v in b.items():
            out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
        return out

    body = merge(VALID, {"spec": spec})
    body["metadata"] = {"name": name}
    return body


CASES: list[tuple[str, dict[str, Any], str]] = [
    (
        "file-not-gguf",
        {"model": {"huggingFace": {"file": "model.safetensors"}}},
        "model.huggingFace.file must name a .gguf file",
    ),
    ("sha256", {"model": {"sha256": "1234"}}, "model.sha256 must be 64 hexadecimal characters"),
    (
        "parallel-negative",
        {"engine": {"parallel": -1}},
        "engine.parallel must be 0 (automatic) or between 1 and 256",
    ),
    (
        "parallel-512",
        {"engine": {"parallel": 512}},
        "engine.parallel must be 0 (automatic) or between 1 and 256",
    ),
    (
        "context-32",
        {"engine": {"contextSize": 32}, "sampling": {"maxTokens": 16}},
        "engine.contextSize must be 0 (automatic) or at least 64",
    ),
    (
        "kv-q8-without-flash-attention",
        {"engine": {"kvCacheType": "q8_0", "flashAttention": "off"}},
        "engine.kvCacheType q8_0 or q4_0 needs flash attention",
    ),
    ("kv-enum", {"engine": {"kvCacheType": "q5_1"}}, 'Unsupported value: "q5_1"'),
    (
        "rag-template",
        {"prompt": {"ragTemplate": "Question: {user_prompt}"}},
        "must contain both {rag_context} and {user_prompt}",
    ),
    ("gpu-idle", {"resources": {"gpu": 1}, "engine": {"gpuLayers": 0}}, "the GPU would sit idle"),
    ("layers-no-gpu", {"engine": {"gpuLayers": 12}}, "but resources.gpu is 0"),
    ("tls-half", {"tls": {"clientCASecretName": "ca"}}, "tls.secretName is required"),
    (
        "max-tokens",
        {"engine": {"contextSize": 512}, "sampling": {"maxTokens": 1024}},
        "sampling.maxTokens must be smaller than engine.contextSize",
    ),
    (
        "gpu-in-limits",
        {"resources": {"limits": {"nvidia.com/gpu": "1"}}},
        "set GPUs with resources.gpu",
    ),
    ("repo", {"model": {"huggingFace": {"repo": "not a repo"}}}, "must look like owner/name"),
    (
        "interval",
        {"monitoring": {"serviceMonitor": {"interval": "soon"}}},
        "must be a duration such as 15s",
    ),
    ("flash-enum", {"engine": {"flashAttention": "maybe"}}, 'Unsupported value: "maybe"'),
    (
        "per-key-limits-without-keys",
        {"auth": {"perKey": {"maxConcurrent": 4}}},
        "auth.perKey limits apply to API keys: set auth.apiKeySecretRef",
    ),
    (
        "response-format-not-an-object-schema",
        {"prompt": {"responseFormat": {"type": "array", "items": {"type": "string"}}}},
        "spec.prompt.responseFormat.type: Unsupported value",
    ),
    (
        "api-key-secret-without-name",
        {"auth": {"apiKeySecretRef": {"key": "keys"}}},
        "spec.auth.apiKeySecretRef.name: Required value",
    ),
    (
        "termination-grace-shorter-than-the-drain",
        {
            "shutdown": {
                "drainDelaySeconds": 10,
                "graceSeconds": 30,
                "terminationGracePeriodSeconds": 20,
            }
        },
        "terminationGracePeriodSeconds must be at least drainDelaySeconds + graceSeconds",
    ),
    (
        "shutdown-grace-zero",
        {"shutdown": {"graceSeconds": 0}},
        "spec.shutdown.graceSeconds: Invalid value",
    ),
]


@pytest.mark.parametrize(("spec", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_invalid_spec_is_refused_by_the_api_server(
    cluster: Cluster,
    llmprofile_crd: Path,  # noqa: F811
    namespace: str,
    spec: dict[str, Any],
    message: str,
) -> None:
    proc = cluster.kubectl(
        "-n", namespace, "apply", "-f", "-", input=yaml.safe_dump(_with(spec)), check=False
    )
    assert proc.returncode != 0, proc.stdout
    assert message in proc.stderr, proc.stderr
    assert cluster.kubectl("-n", namespace, "get", "llmp", "probe", check=False).returncode != 0


def test_name_too_long_is_refused(
    cluster: Cluster,
    llmprofile_crd: Path,  # noqa: F811
    namespace: str,
) -> None:
    proc = cluster.kubectl(
        "-n",
        namespace,
        "apply",
        "-f",
        "-",
        input=yaml.safe_dump(_with({}, name="x" * 60)),
        check=False,
    )
    assert proc.returncode != 0 and "at most 54 characters" in proc.stderr, proc.stderr


def test_defaults_are_filled_and_explained(
    cluster: Cluster,
    llmprofile_crd: Path,  # noqa: F811
    namespace: str,
) -> None:
    cluster.kubectl("-n", namespace, "apply", "-f", "-", input=yaml.safe_dump(VALID))
    stored = yaml.safe_load(
        cluster.kubectl("-n", namespace, "get", "llmp", "probe", "-o", "yaml").stdout
    )
    spec = stored["spec"]
    assert spec["replicas"] == 1
    assert spec["engine"]["parallel"] == 4
    assert spec["model"]["cache"]["size"] == "20Gi"
    assert spec["model"]["huggingFace"]["revision"] == "main"
    explained = cluster.kubectl("explain", "llmp.spec.engine.parallel").stdout
    assert "Sequences decoded together" in explained


def test_automatic_sizing_and_a_quantized_kv_cache_are_accepted(
    cluster: Cluster,
    llmprofile_crd: Path,  # noqa: F811
    namespace: str,
) -> None:
    engine = {"parallel": 0, "contextSize": 0, "kvCacheType": "q8_0"}
    # maxTokens < contextSize binds only an explicit context.
    body = _with({"engine": engine, "sampling": {"maxTokens": 8192}})
    cluster.kubectl("-n", namespace, "apply", "-f", "-", input=yaml.safe_dump(body))
    stored = yaml.safe_load(
        cluster.kubectl("-n", namespace, "get", "llmp", "probe", "-o", "yaml").stdout
    )
    assert stored["spec"]["engine"].items() >= {**engine, "flashAttention": "auto"}.items()
    defaulted = yaml.safe_load(
        cluster.kubectl(
            "-n",
            namespace,
            "apply",
            "--dry-run=server",
            "-o",
            "yaml",
            "-f",
            "-",
            input=yaml.safe_dump(_with({}, name="defaults")),
        ).stdout
    )
    assert defaulted["spec"]["engine"]["kvCacheType"] == "f16"


def test_a_default_output_schema_is_stored_as_written(
    cluster: Cluster,
    llmprofile_crd: Path,  # noqa: F811
    namespace: str,
) -> None:
    # Only this field keeps unknown keys: the JSON schema, nested as deep as it goes.
    schema = {
        "type": "object",
        "properties": {
            "title": {"type": "string", "maxLength": 80},
            "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 8},
        },
        "required": ["title", "tags"],
        "additionalProperties": False,
    }
    body = _with({"prompt": {"responseFormat": schema}})
    cluster.kubectl("-n", namespace, "apply", "-f", "-", input=yaml.safe_dump(body))
    stored = yaml.safe_load(
        cluster.kubectl("-n", namespace, "get", "llmp", "probe", "-o", "yaml").stdout
    )
    assert stored["spec"]["prompt"]["responseFormat"] == schema
