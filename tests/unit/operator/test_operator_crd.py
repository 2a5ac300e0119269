"""The CRD, checked offline: shape, defaults equal to the spec model's, the shipped profiles,
and every CEL rule evaluated (with cel-python) against valid and invalid specs.

The API server is the authority; tests/cluster/test_crd_validation.py applies the same kind
of invalid specs to a real one. This file gives the same feedback in milliseconds.
"""

from __future__ import annotations

import copy
import re
import types
import typing
from pathlib import Path
from typing import Any

import celpy
import jsonschema
import pytest
import yaml
from operator_samples import MINIMAL_SPEC, merge
from pydantic import BaseModel
from sentiric_operator.errors import InvalidProfileError
from sentiric_operator.specs import ProfileSpec, parse_profile, parse_spec

ROOT = Path(__file__).resolve().parents[3]
CRD_PATH = ROOT / "crds" / "llmprofiles.llm.sentiric.ai.yaml"
PROFILES = sorted((ROOT / "profiles").glob("*.yaml"))

CRD: dict[str, Any] = yaml.safe_load(CRD_PATH.read_text())
VERSION: dict[str, Any] = CRD["spec"]["versions"][0]
SCHEMA: dict[str, Any] = VERSION["schema"]["openAPIV3Schema"]
CEL = celpy.Environment()


def apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """Structural defaulting as the API server does it: missing fields with a default."""
    if isinstance(value, dict) and schema.get("type") == "object":
        props = schema.get("properties", {})
        for key, sub in props.items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                value[key] = apply_defaults(sub, value[key])
    elif isinstance(value, list) and "items" in schema:
        return [apply_defaults(schema["items"], v) for v in value]
    return value


def cel_violations(schema: dict[str, Any], value: Any, path: str = "") -> list[str]:
    """Evaluate every x-kubernetes-validations rule on the value it applies to."""
    found = []
    for rule in schema.get("x-kubernetes-validations", []):
        program = CEL.program(CEL.compile(rule["rule"]))
        result = program.evaluate({"self": celpy.json_to_cel(value)})
        if not bool(result):
            found.append(f"{path or '<root>'}: {rule['message']}")
    if isinstance(value, dict):
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                found += cel_violations(sub, value[key], f"{path}.{key}" if path else key)
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            found += cel_violations(schema["items"], item, f"{path}[{i}]")
    return found


def problems(obj: dict[str, Any]) -> list[str]:
    """What the API server would refuse: schema errors first, then CEL rule messages."""
    obj = apply_defaults(SCHEMA, copy.deepcopy(obj))
    validator = jsonschema.Draft4Validator(SCHEMA)
    errors = [f"{'.'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(obj)]
    return errors or cel_violations(SCHEMA, obj)


def llmp(spec: dict[str, Any], name: str = "chat") -> dict[str, Any]:
    return {
        "apiVersion": "llm.sentiric.ai/v1alpha1",
        "kind": "LLMProfile",
        "metadata": {"name": name, "namespace": "ai"},
        "spec": spec,
    }


def test_names_subresources_and_columns() -> None:
    assert CRD["metadata"]["name"] == "llmprofiles.llm.sentiric.ai"
    names = CRD["spec"]["names"]
    assert (names["kind"], names["plural"], names["shortNames"]) == (
        "LLMProfile",
        "llmprofiles",
        ["llmp"],
    )
    assert CRD["spec"]["scope"] == "Namespaced"
    assert VERSION["name"] == "v1alpha1"
    assert VERSION["subresources"] == {
        "status": {},
        "scale": {
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.replicas",
            "labelSelectorPath": ".status.selector",
        },
    }
    columns = [c["name"] for c in VERSION["additionalPrinterColumns"]]
    assert columns == ["Model", "Replicas", "Ready", "Reason", "Age"]


def test_spec_and_status_are_fully_structural() -> None:
    for part in ("spec", "status"):
        assert "x-kubernetes-preserve-unknown-fields" not in SCHEMA["properties"][part]


def test_crd_defaults_are_the_spec_models_defaults() -> None:
    defaulted = apply_defaults(SCHEMA, llmp(copy.deepcopy(MINIMAL_SPEC)))["spec"]
    assert parse_spec(defaulted) == parse_spec(MINIMAL_SPEC)


def _model_of(annotation: Any) -> type[BaseModel] | None:
    candidates = (
        typing.get_args(annotation)
        if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union
        else (annotation,)
    )
    for c in candidates:
        if isinstance(c, type) and issubclass(c, BaseModel):
            return c
        if typing.get_origin(c) is tuple:
            inner = _model_of(typing.get_args(c)[0])
            if inner is not None:
                return inner
    return None


def _compare(model: type[BaseModel], schema: dict[str, Any], path: str) -> list[str]:
    node = schema.get("items", schema) if schema.get("type") == "array" else schema
    crd_keys = set(node.get("properties", {}))
    fields = {(f.alias or name): f for name, f in model.model_fields.items()}
    out = (
        [f"{path}: in the CRD only: {sorted(crd_keys - set(fields))}"]
        if crd_keys - set(fields)
        else []
    )
    if set(fields) - crd_keys:
        out.append(f"{path}: in the spec model only: {sorted(set(fields) - crd_keys)}")
    for key, field in fields.items():
        sub = _model_of(field.annotation)
        if sub is not None and key in crd_keys:
            out += _compare(sub, node["properties"][key], f"{path}.{key}")
        if key in crd_keys and _bounds(field) != _crd_bounds(node["properties"][key]):
            out.append(
                f"{path}.{key}: bounds {_bounds(field)} in the spec model, "
                f"{_crd_bounds(node['properties'][key])} in the CRD"
            )
    return out


def _bounds(field: Any) -> dict[str, float]:
    """A field's numeric bounds (Field(ge=...), or a shared type from sampling_bounds.py)."""
    found: dict[str, float] = {}
    for bound in field.metadata:
        for kind in ("ge", "gt", "le", "lt"):
            if hasattr(bound, kind):
                found[kind] = getattr(bound, kind)
    return found


# A range written as a CEL rule, for its clearer message (engine.parallel).
_CEL_RANGE = re.compile(r"self (>=|>) (-?[\d.]+) && self (<=|<) (-?[\d.]+)")
_CEL_KINDS = {">=": "ge", ">": "gt", "<=": "le", "<": "lt"}


def _crd_bounds(node: dict[str, Any]) -> dict[str, float]:
    """The same bounds in OpenAPI's spelling (minimum plus exclusiveMinimum, ...) or CEL's."""
    found: dict[str, float] = {}
    if "minimum" in node:
        found["gt" if node.get("exclusiveMinimum") else "ge"] = node["minimum"]
    if "maximum" in node:
        found["lt" if node.get("exclusiveMaximum") else "le"] = node["maximum"]
    for rule in node.get("x-kubernetes-validations", []):
        match = _CEL_RANGE.fullmatch(rule["rule"])
        if match:
            found[_CEL_KINDS[match[1]]] = float(match[2])
            found[_CEL_KINDS[match[3]]] = float(match[4])
    return found


def test_crd_and_spec_model_have_the_same_fields_and_bounds() -> None:
    assert _compare(ProfileSpec, SCHEMA["properties"]["spec"], "spec") == []


def test_the_bounds_check_sees_a_drifted_crd() -> None:
    # The comparison above would notice a CRD bound that no longer matches the model's.
    drifted = copy.deepcopy(SCHEMA["properties"]["spec"])
    drifted["properties"]["sampling"]["properties"]["temperature"]["maximum"] = 3
    problems = _compare(ProfileSpec, drifted, "spec")
    assert problems == [
        "spec.sampling.temperature: bounds {'ge': 0.0, 'le': 2.0} in the spec model, "
        "{'ge': 0, 'le': 3} in the CRD"
    ]


@pytest.mark.parametrize("path", PROFILES, ids=[p.name for p in PROFILES])
def test_shipped_profiles_are_valid(path: Path) -> None:
    body = yaml.safe_load(path.read_text())
    assert problems(body) == []
    parsed = parse_profile({**body, "metadata": {**body["metadata"], "namespace": "ai"}})
    assert parsed.spec.model.hugging_face.file.endswith(".gguf")


def test_at_least_three_profiles_ship() -> None:
    names = {p.name for p in PROFILES}
    assert "qwen25-3b-phone-assistant.yaml" in names
    gpu = [p for p in PROFILES if yaml.safe_load(p.read_text())["spec"]["resources"]["gpu"] > 0]
    assert len(PROFILES) >= 3 and len(gpu) >= 2 and len(PROFILES) > len(gpu)


INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("file not gguf", {"model": {"huggingFace": {"file": "model.bin"}}}, "must name a .gguf file"),
    ("repo shape", {"model": {"huggingFace": {"repo": "justaname"}}}, "must look like owner/name"),
    ("sha256 short", {"model": {"sha256": "abc123"}}, "64 hexadecimal"),
    ("sha256 not hex", {"model": {"sha256": "z" * 64}}, "64 hexadecimal"),
    ("parallel -1", {"engine": {"parallel": -1}}, "0 (automatic) or between 1 and 256"),
    ("parallel 300", {"engine": {"parallel": 300}}, "0 (automatic) or between 1 and 256"),
    (
        "contextSize 32",
        {"engine": {"contextSize": 32}, "sampling": {"maxTokens": 16}},
        "0 (automatic) or at least 64",
    ),
    (
        "quantized KV without flash attention",
        {"engine": {"kvCacheType": "q8_0", "flashAttention": "off"}},
        "kvCacheType q8_0 or q4_0 needs flash attention",
    ),
    (
        "q4_0 KV without flash attention",
        {"engine": {"kvCacheType": "q4_0", "flashAttention": "off"}},
        "needs flash attention",
    ),
    (
        "rag template",
        {"prompt": {"ragTemplate": "Facts: {rag_context}"}},
        "must contain both {rag_context} and {user_prompt}",
    ),
    ("gpu idle", {"resources": {"gpu": 1}, "engine": {"gpuLayers": 0}}, "GPU would sit idle"),
    ("layers without gpu", {"engine": {"gpuLayers": 28}}, "resources.gpu is 0"),
    ("client CA alone", {"tls": {"clientCASecretName": "ca"}}, "tls.secretName is required"),
    (
        "maxTokens too large",
        {"engine": {"contextSize": 1024}, "sampling": {"maxTokens": 2048}},
        "smaller than engine.contextSize",
    ),
    (
        "gpu in limits",
        {"resources": {"limits": {"nvidia.com/gpu": 1}}},
        "set GPUs with resources.gpu",
    ),
    ("interval", {"monitoring": {"serviceMonitor": {"interval": "often"}}}, "duration"),
    ("batchSize 8", {"engine": {"batchSize": 8}}, "0 (automatic) or at least 16"),
]


@pytest.mark.parametrize(
    ("override", "message"), [(o, m) for _, o, m in INVALID], ids=[i for i, _, _ in INVALID]
)
def test_cel_rules_refuse(override: dict[str, Any], message: str) -> None:
    found = problems(llmp(merge(MINIMAL_SPEC, override)))
    assert len(found) == 1 and message in found[0], found


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("a" * 55, "at most 54 characters"),
        ("9lives", "start with a letter"),
    ],
)
def test_name_rules(name: str, message: str) -> None:
    found = problems(llmp(copy.deepcopy(MINIMAL_SPEC), name=name))
    assert any(message in f for f in found), found


@pytest.mark.parametrize(
    ("override", "path"),
    [
        ({"engine": {"flashAttention": "maybe"}}, "spec.engine.flashAttention"),
        ({"engine": {"kvCacheType": "q5_1"}}, "spec.engine.kvCacheType"),
        ({"engine": {"contextSize": -1}}, "spec.engine.contextSize"),
        ({"sampling": {"topP": 0}}, "spec.sampling.topP"),
        ({"model": {"cache": {"size": "lots"}}}, "spec.model.cache.size"),
        ({"replicas": -1}, "spec.replicas"),
        # The schema's root must be an object; the rest of it is checked by the operator.
        ({"prompt": {"responseFormat": {"type": "array"}}}, "spec.prompt.responseFormat.type"),
        ({"prompt": {"responseFormat": {"items": {}}}}, "spec.prompt.responseFormat"),
    ],
)
def test_schema_refuses(override: dict[str, Any], path: str) -> None:
    found = problems(llmp(merge(MINIMAL_SPEC, override)))
    assert found and found[0].startswith(path), found


def test_minimal_and_full_specs_pass() -> None:
    full = merge(
        MINIMAL_SPEC,
        {
            "model": {"sha256": "0" * 64, "huggingFace": {"tokenSecretRef": {"name": "hf"}}},
            "resources": {"gpu": 1, "limits": {"memory": "8Gi"}},
            "tls": {"secretName": "s", "clientCASecretName": "c"},
            "monitoring": {"serviceMonitor": {"enabled": True, "interval": "500ms"}},
        },
    )
    assert problems(llmp(copy.deepcopy(MINIMAL_SPEC))) == []
    assert problems(llmp(full)) == []


AUTOMATIC: list[tuple[str, dict[str, Any]]] = [
    ("parallel 0", {"engine": {"parallel": 0}}),
    ("contextSize 0", {"engine": {"contextSize": 0}}),
    ("both 0", {"engine": {"parallel": 0, "contextSize": 0}}),
    # maxTokens < contextSize only binds an explicit context: an automatic one keeps room.
    (
        "contextSize 0 with maxTokens",
        {"engine": {"contextSize": 0}, "sampling": {"maxTokens": 8192}},
    ),
    ("q8_0 KV, flash attention auto", {"engine": {"kvCacheType": "q8_0"}}),
    ("q4_0 KV, flash attention on", {"engine": {"kvCacheType": "q4_0", "flashAttention": "on"}}),
    ("f16 KV, flash attention off", {"engine": {"kvCacheType": "f16", "flashAttention": "off"}}),
]


@pytest.mark.parametrize("override", [o for _, o in AUTOMATIC], ids=[i for i, _ in AUTOMATIC])
def test_automatic_sizing_and_kv_cache_types_pass(override: dict[str, Any]) -> None:
    body = llmp(merge(MINIMAL_SPEC, override))
    assert problems(body) == []
    engine = parse_spec(body["spec"]).engine
    assert engine.model_dump(by_alias=True).items() >= override["engine"].items()


def test_a_default_output_schema_passes_admission_and_the_operator_checks_the_rest() -> None:
    schema = {
        "type": "object",
        "properties": {"title": {"type": "string", "maxLength": 80}},
        "required": ["title"],
        "additionalProperties": False,
    }
    body = llmp(merge(MINIMAL_SPEC, {"prompt": {"responseFormat": schema}}))
    assert problems(body) == []
    assert parse_spec(body["spec"]).prompt.response_format == schema
    # What the CRD cannot see inside the schema, the spec model refuses, naming the field.
    too_long = merge(schema, {"properties": {"title": {"maxLength": 5000}}})
    bad = llmp(merge(MINIMAL_SPEC, {"prompt": {"responseFormat": too_long}}))
    assert problems(bad) == []
    with pytest.raises(InvalidProfileError, match=r"prompt\.responseFormat.*maxSchemaRepetition"):
        parse_spec(bad["spec"])


def test_kv_cache_type_defaults_to_f16() -> None:
    defaulted = apply_defaults(SCHEMA, llmp(copy.deepcopy(MINIMAL_SPEC)))["spec"]
    assert defaulted["engine"]["kvCacheType"] == "f16"
