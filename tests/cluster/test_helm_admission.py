"""The chart's opt-in image allowlist, enforced by the real API server's admission.

`helm install` with admission.allowedImagePrefixes renders a ValidatingAdmissionPolicy and
its binding; the API server then refuses LLMProfiles whose spec.image is elsewhere, with a
message saying what is allowed, and admits the rest. The policy is cluster-wide, so the test
uninstalls it and waits until it no longer applies before the next test runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .conftest import REPO_ROOT, Cluster
from .test_operator_lifecycle import llmprofile_crd  # noqa: F401  (fixture)

CHART = REPO_ROOT / "charts" / "sentiric-llm"
RELEASE = "llm-admission"
POLICY = f"{RELEASE}-sentiric-llm-allowed-images"
ALLOWED_PREFIX = "registry.example.com/ml/"
DENIED = "docker.io/someone/llm:1"


def _profile(namespace: str, name: str, image: str | None) -> str:
    spec: dict[str, Any] = {
        "model": {
            "huggingFace": {
                "repo": "Qwen/Qwen2.5-0.5B-Instruct-GGUF",
                "file": "qwen2.5-0.5b-instruct-q4_k_m.gguf",
            }
        }
    }
    if image is not None:
        spec["image"] = image
    return json.dumps(
        {
            "apiVersion": "llm.sentiric.ai/v1alpha1",
            "kind": "LLMProfile",
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec,
        }
    )


def _create(cluster: Cluster, namespace: str, name: str, image: str | None, *extra: str) -> Any:
    return cluster.kubectl(
        "-n",
        namespace,
        "create",
        *extra,
        "-f",
        "-",
        input=_profile(namespace, name, image),
        check=False,
    )


def _policy_applies(cluster: Cluster, namespace: str) -> bool:
    # A dry run goes through admission without creating anything.
    return _create(cluster, namespace, "probe", DENIED, "--dry-run=server").returncode != 0


def test_allowlist_refuses_other_images_with_a_clear_message(
    cluster: Cluster,
    namespace: str,
    llmprofile_crd: Path,  # noqa: F811
) -> None:
    # A profile from before the policy: it must stay manageable afterwards.
    assert _create(cluster, namespace, "legacy", DENIED).returncode == 0
    cluster.helm(
        "install",
        RELEASE,
        str(CHART),
        "--namespace",
        namespace,
        "--set-json",
        f'admission.allowedImagePrefixes=["{ALLOWED_PREFIX}"]',
        "--set-json",
        'admission.allowedImages=["exact.example.com/llm:1.0"]',
        timeout=180,
    )
    try:
        kinds = cluster.kubectl(
            "get", "validatingadmissionpolicy,validatingadmissionpolicybinding", "-o", "name"
        ).stdout.split()
        assert f"validatingadmissionpolicy.admissionregistration.k8s.io/{POLICY}" in kinds
        assert f"validatingadmissionpolicybinding.admissionregistration.k8s.io/{POLICY}" in kinds
        # The API server loads new policies asynchronously (about a second).
        cluster.wait_for(
            lambda: _policy_applies(cluster, namespace), timeout=30, message="the policy to apply"
        )

        refused = _create(cluster, namespace, "outside", DENIED)
        assert refused.returncode != 0
        message = refused.stderr
        assert f"ValidatingAdmissionPolicy '{POLICY}'" in message, message
        assert f"spec.image {DENIED} is not allowed here" in message
        assert ALLOWED_PREFIX in message and "admission.allowedImagePrefixes" in message
        assert "Forbidden" in message or "forbidden" in message or "denied" in message

        look_alike = _create(cluster, namespace, "lookalike", "registry.example.com/ml-x/llm:1")
        assert look_alike.returncode != 0

        for name, image in [
            ("inside", f"{ALLOWED_PREFIX}sentiric-llm-inference:0.2.0"),
            ("exact", "exact.example.com/llm:1.0"),
            ("chart-default", "ghcr.io/sentiric/sentiric-llm-inference:0.1.0"),
            ("operator-default", None),
        ]:
            admitted = _create(cluster, namespace, name, image)
            assert admitted.returncode == 0, (name, admitted.stderr)

        # Changing an image to one outside the list is refused; other updates are not.
        moved = cluster.kubectl(
            "-n",
            namespace,
            "patch",
            "llmp",
            "inside",
            "--type=merge",
            "-p",
            json.dumps({"spec": {"image": DENIED}}),
            check=False,
        )
        assert moved.returncode != 0 and "is not allowed here" in moved.stderr
        cluster.kubectl("-n", namespace, "label", "llmp", "legacy", "team=a")
        cluster.kubectl("-n", namespace, "scale", "llmp", "legacy", "--replicas=2")
        legacy_moved = cluster.kubectl(
            "-n",
            namespace,
            "patch",
            "llmp",
            "legacy",
            "--type=merge",
            "-p",
            json.dumps({"spec": {"image": "docker.io/someone/llm:2"}}),
            check=False,
        )
        assert legacy_moved.returncode != 0
    finally:
        cluster.helm("uninstall", RELEASE, "--namespace", namespace, "--wait", timeout=180)
        # Cluster-wide: later tests must not meet it.
        cluster.wait_for(
            lambda: not _policy_applies(cluster, namespace),
            timeout=30,
            message="the policy to stop applying",
        )
