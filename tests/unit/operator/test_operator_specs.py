"""specs: defaults resolved once, and every invalid spec refused with the field named."""

from __future__ import annotations

from typing import Any

import pytest
from operator_samples import MINIMAL_SPEC, merge, profile
from sentiric_operator.errors import InvalidProfileError
from sentiric_operator.specs import API_VERSION, KIND, parse_profile, parse_spec


def test_minimal_spec_resolves_every_default() -> None:
    spec = parse_spec(MINIMAL_SPEC)
    assert spec.model.hugging_face.revision == "main"
    assert spec.model.cache.size == "20Gi"
    assert spec.model.cache.access_mode == "ReadWriteOnce"
    assert spec.engine.parallel == 4
    assert spec.engine.gpu_layers == -1
    assert spec.sampling.max_tokens == 512
    assert spec.replicas == 1
    assert spec.resources.gpu == 0
    assert spec.monitoring.service_monitor.enabled is False
    assert spec.tls is None
    assert "{rag_context}" in spec.prompt.rag_template


def test_camel_case_keys_map_onto_fields() -> None:
    spec = parse_spec(
        merge(
            MINIMAL_SPEC,
            {
                "engine": {"contextSize": 8192, "flashAttention": "on"},
                "sampling": {"topP": 0.5, "repeatPenalty": 1.2},
                "tls": {"secretName": "srv", "clientCASecretName": "ca"},
                "model": {"huggingFace": {"tokenSecretRef": {"name": "hf"}}},
            },
        )
    )
    assert spec.engine.context_size == 8192
    assert spec.engine.flash_attention == "on"
    assert spec.sampling.top_p == 0.5
    assert spec.tls is not None and spec.tls.client_ca_secret_name == "ca"
    ref = spec.model.hugging_face.token_secret_ref
    assert ref is not None and (ref.name, ref.key) == ("hf", "token")


INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("not gguf", {"model": {"huggingFace": {"file": "model.bin"}}}, "spec.model.huggingFace.file"),
    ("bad repo", {"model": {"huggingFace": {"repo": "no-slash"}}}, "spec.model.huggingFace.repo"),
    ("bad sha", {"model": {"sha256": "abc"}}, "spec.model.sha256"),
    ("parallel -1", {"engine": {"parallel": -1}}, "spec.engine.parallel"),
    ("contextSize 32", {"engine": {"contextSize": 32}}, "spec.engine.contextSize"),
    (
        "q8_0 KV without flash attention",
        {"engine": {"kvCacheType": "q8_0", "flashAttention": "off"}},
        "kvCacheType q8_0 needs flash attention",
    ),
    ("unknown KV type", {"engine": {"kvCacheType": "q5_1"}}, "spec.engine.kvCacheType"),
    ("parallel 257", {"engine": {"parallel": 257}}, "spec.engine.parallel"),
    ("rag template", {"prompt": {"ragTemplate": "{user_prompt} only"}}, "spec.prompt.ragTemplate"),
    ("gpu idle", {"resources": {"gpu": 1}, "engine": {"gpuLayers": 0}}, "gpuLayers is 0"),
    ("layers without gpu", {"engine": {"gpuLayers": 20}}, "resources.gpu is 0"),
    ("gpu in limits", {"resources": {"limits": {"nvidia.com/gpu": 1}}}, "resources.gpu"),
    ("maxTokens", {"sampling": {"maxTokens": 4096}}, "maxTokens"),
    ("tls without cert", {"tls": {"clientCASecretName": "ca"}}, "spec.tls.secretName"),
    ("unknown key", {"engine": {"paralel": 2}}, "spec.engine.paralel"),
    ("bad interval", {"monitoring": {"serviceMonitor": {"interval": "soon"}}}, "interval"),
    ("temperature", {"sampling": {"temperature": 3}}, "spec.sampling.temperature"),
    ("batchSize 8", {"engine": {"batchSize": 8}}, "spec.engine.batchSize"),
]


@pytest.mark.parametrize(
    ("override", "field"), [(o, f) for _, o, f in INVALID], ids=[i for i, _, _ in INVALID]
)
def test_invalid_specs_name_the_field(override: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidProfileError) as info:
        parse_spec(merge(MINIMAL_SPEC, override))
    assert field in str(info.value)


@pytest.mark.parametrize(
    ("engine", "sampling"),
    [
        ({"parallel": 0}, {}),
        ({"contextSize": 0}, {}),
        ({"parallel": 0, "contextSize": 0}, {}),
        # The automatic context keeps room for maxTokens, so maxTokens < contextSize is moot.
        ({"contextSize": 0}, {"maxTokens": 8192}),
        ({"kvCacheType": "q4_0", "flashAttention": "on"}, {}),
    ],
)
def test_automatic_sizing_is_accepted(engine: dict[str, Any], sampling: dict[str, Any]) -> None:
    spec = parse_spec(merge(MINIMAL_SPEC, {"engine": engine, "sampling": sampling}))
    assert spec.engine.model_dump(by_alias=True).items() >= engine.items()


def test_missing_model_is_refused() -> None:
    with pytest.raises(InvalidProfileError, match=r"spec\.model"):
        parse_spec({})


def test_parse_profile_reads_identity_and_owner_reference() -> None:
    body = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": "chat", "namespace": "ai", "uid": "u-1", "generation": 3},
        "spec": MINIMAL_SPEC,
    }
    parsed = parse_profile(body)
    assert (parsed.name, parsed.namespace, parsed.generation) == ("chat", "ai", 3)
    ref = parsed.owner_reference()
    assert ref == {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": "chat",
        "uid": "u-1",
        "controller": True,
        "blockOwnerDeletion": True,
    }
    assert profile().spec == parsed.spec
