"""The opt-in image allowlist: rendered only when asked for, and its CEL evaluated offline.

The API server evaluates the same expressions (tests/cluster/test_helm_admission.py); here
cel-python runs them over a table of profiles, so every branch is checked in milliseconds.
"""

from __future__ import annotations

from typing import Any

import celpy
import pytest

from tests.unit.chart.conftest import Helm, by_kind, one

ALLOW = ("--set-json", 'admission.allowedImagePrefixes=["registry.example.com/ml/"]')
POLICY = "ValidatingAdmissionPolicy"
BINDING = "ValidatingAdmissionPolicyBinding"
DEFAULT_CPU = "ghcr.io/sentiric/sentiric-llm-inference:0.1.0"
DEFAULT_CUDA = "ghcr.io/sentiric/sentiric-llm-inference:0.1.0-cuda"


def _profile(image: str | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"model": {"huggingFace": {"repo": "a/b", "file": "m.gguf"}}}
    if image is not None:
        spec["image"] = image
    return {"apiVersion": "llm.sentiric.ai/v1alpha1", "kind": "LLMProfile", "spec": spec}


class Policy:
    """The rendered policy's variables and validations, evaluated like the API server does:
    variables in order (each may use the earlier ones), then every validation."""

    def __init__(self, policy: dict[str, Any]) -> None:
        env = celpy.Environment()
        spec = policy["spec"]
        self.variables = [
            (v["name"], env.program(env.compile(v["expression"]))) for v in spec["variables"]
        ]
        self.validations = [
            (
                env.program(env.compile(v["expression"])),
                env.program(env.compile(v["messageExpression"])),
            )
            for v in spec["validations"]
        ]

    def check(
        self, operation: str, new: dict[str, Any], old: dict[str, Any] | None = None
    ) -> str | None:
        """None when admitted, else the refusal message."""
        activation: dict[str, Any] = {
            "object": celpy.json_to_cel(new),
            "oldObject": celpy.json_to_cel(old),
            "request": celpy.json_to_cel({"operation": operation}),
        }
        values: dict[str, Any] = {}
        for name, program in self.variables:
            activation["variables"] = celpy.json_to_cel(values)
            result = program.evaluate(activation)
            assert not isinstance(result, celpy.CELEvalError), (name, result)
            values[name] = result
        activation["variables"] = celpy.celtypes.MapType(
            {celpy.celtypes.StringType(k): v for k, v in values.items()}
        )
        for rule, message in self.validations:
            verdict = rule.evaluate(activation)
            assert not isinstance(verdict, celpy.CELEvalError), verdict
            if not verdict:
                return str(message.evaluate(activation))
        return None


def test_no_policy_by_default(helm: Helm) -> None:
    objects = helm.template()
    assert not by_kind(objects, POLICY) and not by_kind(objects, BINDING)


def test_policy_and_binding_match_profile_writes_and_deny(helm: Helm) -> None:
    objects = helm.template(*ALLOW)
    policy, binding = one(objects, POLICY), one(objects, BINDING)
    name = policy["metadata"]["name"]
    assert name == "llm-sentiric-llm-allowed-images"
    assert "namespace" not in policy["metadata"] and "namespace" not in binding["metadata"]
    assert policy["spec"]["failurePolicy"] == "Fail"
    (rule,) = policy["spec"]["matchConstraints"]["resourceRules"]
    assert rule == {
        "apiGroups": ["llm.sentiric.ai"],
        "apiVersions": ["*"],
        "operations": ["CREATE", "UPDATE"],
        "resources": ["llmprofiles"],
    }
    assert binding["spec"] == {"policyName": name, "validationActions": ["Deny"]}


@pytest.mark.parametrize(
    ("image", "admitted"),
    [
        (None, True),
        ("", True),
        ("registry.example.com/ml/sentiric-llm-inference:0.2.0", True),
        ("registry.example.com/ml/team/llm@sha256:" + "a" * 64, True),
        # The trailing "/" of a prefix keeps a look-alike repository out.
        ("registry.example.com/ml-evil/llm:1", False),
        ("registry.example.com/mlx:1", False),
        ("docker.io/attacker/llm:latest", False),
        ("evil.example.com/registry.example.com/ml/llm:1", False),
        ("exact.example.com/llm:1.0", True),
        ("exact.example.com/llm:1.0-debug", False),
        (DEFAULT_CPU, True),
        (DEFAULT_CUDA, True),
        ("ghcr.io/sentiric/sentiric-llm-inference:0.0.9", False),
    ],
)
def test_create_is_admitted_only_for_allowed_images(
    helm: Helm, image: str | None, admitted: bool
) -> None:
    policy = Policy(
        one(
            helm.template(
                *ALLOW, "--set-json", 'admission.allowedImages=["exact.example.com/llm:1.0"]'
            ),
            POLICY,
        )
    )
    refusal = policy.check("CREATE", _profile(image))
    assert (refusal is None) == admitted, refusal
    if refusal is not None:
        assert f"spec.image {image} is not allowed here" in refusal
        assert "registry.example.com/ml/" in refusal and "admission.allowedImagePrefixes" in refusal


def test_updates_are_checked_only_when_the_image_changes(helm: Helm) -> None:
    policy = Policy(one(helm.template(*ALLOW), POLICY))
    legacy = _profile("docker.io/old/llm:1")
    # A profile created before the policy can still be annotated, scaled and deleted...
    assert policy.check("UPDATE", legacy, legacy) is None
    # ...but not moved to another image outside the list, nor given one.
    assert policy.check("UPDATE", _profile("docker.io/old/llm:2"), legacy) is not None
    assert policy.check("UPDATE", _profile("docker.io/x/llm:1"), _profile(None)) is not None
    assert policy.check("UPDATE", _profile("registry.example.com/ml/llm:2"), legacy) is None
    assert policy.check("UPDATE", _profile(None), legacy) is None


def test_default_images_follow_the_chart_values(helm: Helm) -> None:
    policy = Policy(
        one(
            helm.template(
                *ALLOW,
                "--set",
                "inferenceImage.repository=mirror.example.com/llm",
                "--set",
                "inferenceImage.tag=7.0",
            ),
            POLICY,
        )
    )
    assert policy.check("CREATE", _profile("mirror.example.com/llm:7.0")) is None
    assert policy.check("CREATE", _profile("mirror.example.com/llm:7.0-cuda")) is None
    assert policy.check("CREATE", _profile(DEFAULT_CPU)) is not None


def test_only_exact_images_without_prefixes(helm: Helm) -> None:
    objects = helm.template("--set-json", 'admission.allowedImages=["exact.example.com/llm:1.0"]')
    policy = Policy(one(objects, POLICY))
    assert policy.check("CREATE", _profile("exact.example.com/llm:1.0")) is None
    assert policy.check("CREATE", _profile("exact.example.com/llm:1.1")) is not None


@pytest.mark.parametrize(
    "value",
    [
        'admission.allowedImagePrefixes=["registry.example.com/ml"]',
        'admission.allowedImagePrefixes=["reg.example.com/a b/"]',
        "admission.allowedImagePrefixes=[\"x/'+true+'/\"]",
        'admission.allowedImages=["exact.example.com/llm:1.0\\""]',
        'admission.allowedImagePrefixes=["a/","a/"]',
        'admission.allowedImageRegistries=["a/"]',
    ],
)
def test_schema_refuses_a_prefix_that_could_match_too_much_or_break_the_cel(
    helm: Helm, value: str
) -> None:
    error = helm.template_error("--set-json", value)
    assert "values don't meet the specifications of the schema" in error
    assert "admission" in error


def test_a_cluster_without_validating_admission_policies_is_refused(helm: Helm) -> None:
    error = helm.template_error(*ALLOW, "--kube-version", "1.29.5")
    assert "need ValidatingAdmissionPolicy" in error and "1.30" in error


def test_the_releases_own_profiles_are_checked_at_render(helm: Helm) -> None:
    # Helm may create them before the API server has loaded the new policy.
    error = helm.template_error(
        *ALLOW,
        "--set-json",
        'profiles=[{"name":"qwen","spec":{"image":"docker.io/x/llm:1"}}]',
    )
    assert 'profiles: "qwen" has spec.image "docker.io/x/llm:1"' in error
    objects = helm.template(
        *ALLOW,
        "--set-json",
        'profiles=[{"name":"a","spec":{"image":"registry.example.com/ml/llm:1"}},'
        '{"name":"b","spec":{"image":"' + DEFAULT_CPU + '"}},{"name":"c","spec":{}}]',
    )
    assert len(by_kind(objects, "LLMProfile")) == 3
    # Without an allowlist any image renders.
    plain = helm.template(
        "--set-json", 'profiles=[{"name":"qwen","spec":{"image":"docker.io/x/llm:1"}}]'
    )
    assert len(by_kind(plain, "LLMProfile")) == 1
