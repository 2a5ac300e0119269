"""A crashing engine is a status: EngineCrashed names the signal and the last log lines.

kwok runs no containers, so the crash is what a kubelet would report: the test writes the
serve container's status (CrashLoopBackOff, last terminated by signal, its log tail as the
termination message) through the API server's pod status subresource, and the real operator
turns it into the profile's conditions.
"""

from __future__ import annotations

import json
from typing import Any

from .test_operator_lifecycle import (
    INSTANCE,
    Kube,
    OperatorProcess,
    kube,  # noqa: F401  (fixture)
    llm_profile,
    llmprofile_crd,  # noqa: F401  (fixture)
    operator,  # noqa: F401  (fixture)
)

SEGFAULT_LOG = "\n".join(
    [
        *(f"llama_model_loader: - kv {i}: general.key{i} = value" for i in range(60)),
        "Fatal Python error: Segmentation fault",
        "Current thread 0x00007f (most recent call first):",
        '  File "/app/sentiric_inference/engine/native.py", line 212 in decode',
    ]
)


def _crash(k: Kube, pod: str, *, exit_code: int, reason: str, message: str) -> None:
    """Write what the kubelet reports for a serve container crash-looping after `exit_code`."""
    body: dict[str, Any] = json.loads(
        k.cluster.kubectl("-n", k.namespace, "get", "pod", pod, "-o", "json").stdout
    )
    status = body["status"]
    containers = []
    for c in status["containerStatuses"]:
        if c["name"] == "inference":
            c = {
                **c,
                "ready": False,
                "started": False,
                "restartCount": 3,
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}},
                "lastState": {
                    "terminated": {
                        "exitCode": exit_code,
                        "reason": reason,
                        "message": message,
                        "startedAt": "2026-01-01T00:00:00Z",
                        "finishedAt": "2026-01-01T00:00:09Z",
                    }
                },
            }
        containers.append(c)
    conditions = [
        {**c, "status": "False"} if c["type"] in ("Ready", "ContainersReady") else c
        for c in status["conditions"]
    ]
    patch = {"status": {"containerStatuses": containers, "conditions": conditions}}
    k.cluster.kubectl(
        "-n",
        k.namespace,
        "patch",
        "pod",
        pod,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(patch),
    )


def test_a_crashing_engine_is_engine_crashed_with_signal_and_log_tail(
    kube: Kube,  # noqa: F811
    operator: OperatorProcess,  # noqa: F811
) -> None:
    kube.apply(llm_profile(kube, "crashy", resources={"limits": {"memory": "3Gi"}}))
    kube.wait_condition("crashy", "Ready", "True", "AllReplicasReady", timeout=120)
    (pod,) = [
        p.metadata.name
        for p in kube.core.list_namespaced_pod(
            kube.namespace, label_selector=f"{INSTANCE}=crashy"
        ).items
        if p.metadata.deletion_timestamp is None
    ]
    serve = kube.apps.read_namespaced_deployment("crashy", kube.namespace).spec.template.spec
    assert serve.containers[0].termination_message_policy == "FallbackToLogsOnError"

    _crash(kube, pod, exit_code=139, reason="Error", message=SEGFAULT_LOG)
    cond = kube.wait_condition("crashy", "Ready", "False", "EngineCrashed", timeout=90)
    msg = cond["message"]
    assert (
        f"pod {pod}: the inference engine was killed by SIGSEGV (signal 11, exit code 139)" in msg
    )
    assert "3 restarts" in msg
    assert "Fatal Python error: Segmentation fault" in msg and "line 212 in decode" in msg
    assert "general.key59" in msg and "general.key40" not in msg  # the tail, not the whole log
    assert f"kubectl logs -n {kube.namespace} {pod} -c inference --previous" in msg
    available = kube.condition("crashy", "Available")
    assert available is not None and available["reason"] == "EngineCrashed"
    printed = kube.cluster.kubectl("-n", kube.namespace, "get", "llmp", "crashy").stdout
    assert "EngineCrashed" in printed  # the Reason column of `kubectl get llmp`

    _crash(kube, pod, exit_code=137, reason="OOMKilled", message="loading model")
    cond = kube.cluster.wait_for(
        lambda: (c := kube.condition("crashy", "Ready")) and "OOMKilled" in c["message"] and c,
        timeout=90,
        message="the OOMKilled message",
    )
    assert cond["reason"] == "EngineCrashed"
    assert "OOMKilled (exit code 137)" in cond["message"]
    assert "spec.resources.limits.memory (now 3Gi)" in cond["message"]
    assert "SIGKILL" not in cond["message"]
