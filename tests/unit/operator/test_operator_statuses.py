"""statuses: every condition reason, computed from observed children alone."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest
from operator_samples import container, downloaded, pod, profile, serving
from sentiric_operator.builders.configmap import config_checksum, config_data
from sentiric_operator.observations import (
    ContainerObservation,
    DeploymentObservation,
    PodObservation,
)
from sentiric_operator.sizing import known_shape, mebibytes, plan_status
from sentiric_operator.specs import Profile
from sentiric_operator.statuses import (
    Monitoring,
    Observed,
    compute_status,
    invalid_status,
    status_patch,
)

NOW = "2026-01-02T03:04:05Z"
LATER = "2026-01-02T03:09:00Z"


def _checksum(p: Profile) -> str:
    return config_checksum(config_data(p.spec))


def _deployment(p: Profile, **fields: Any) -> DeploymentObservation:
    base: dict[str, Any] = {
        "name": p.name,
        "generation": 1,
        "observed_generation": 1,
        "desired_replicas": p.spec.replicas,
        "config_checksum": _checksum(p),
    }
    return DeploymentObservation(**{**base, **fields})


def _status(
    p: Profile,
    deployment: DeploymentObservation | None,
    pods: Sequence[PodObservation],
    previous: dict[str, Any] | None = None,
    now: str = NOW,
    **kw: Any,
) -> dict[str, Any]:
    return compute_status(
        p,
        Observed(deployment=deployment, pods=pods, **kw),
        config_checksum=_checksum(p),
        previous=previous or {},
        now=now,
    )


def _conds(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


def _message(status: dict[str, Any], type_: str) -> str:
    return str(next(c["message"] for c in status["conditions"] if c["type"] == type_))


P = profile()
GPU = profile({"resources": {"gpu": 1}})


def crashed(exit_code: int, **fields: Any) -> ContainerObservation:
    """The inference container in a crash loop after its last run ended with `exit_code`."""
    base: dict[str, Any] = {
        "waiting_reason": "CrashLoopBackOff",
        "restart_count": 2,
        "exit_code": exit_code,
        "terminated_reason": "Error",
        "terminated_message": "loading model\nllama_decode: failed",
    }
    return container("inference", **{**base, **fields})


READY_DEPLOYMENT = {
    "replicas": 1,
    "ready_replicas": 1,
    "updated_replicas": 1,
    "available_replicas": 1,
}

CASES: list[
    tuple[str, Profile, dict[str, Any] | None, list[PodObservation], dict[str, tuple[str, str]]]
] = [
    (
        "no deployment yet",
        P,
        None,
        [],
        {
            "ModelReady": ("False", "WaitingForPod"),
            "Available": ("False", "Creating"),
            "Ready": ("False", "Creating"),
        },
    ),
    (
        "pod pending",
        P,
        {},
        [pod()],
        {
            "ModelReady": ("False", "WaitingForPod"),
            "Available": ("False", "Progressing"),
            "Ready": ("False", "Progressing"),
        },
    ),
    (
        "downloading",
        P,
        {},
        [
            pod(
                init=(container("download", running=True),),
                main=(container("inference", waiting_reason="PodInitializing"),),
            )
        ],
        {
            "ModelReady": ("False", "Downloading"),
            "Available": ("False", "Downloading"),
            "Ready": ("False", "Downloading"),
        },
    ),
    (
        "download crash loop",
        P,
        {},
        [
            pod(
                init=(
                    container(
                        "download",
                        waiting_reason="CrashLoopBackOff",
                        restart_count=3,
                        exit_code=1,
                        terminated_reason="Error",
                        terminated_message="404 Client Error: Entry Not Found",
                    ),
                )
            )
        ],
        {
            "ModelReady": ("False", "DownloadFailed"),
            "Available": ("False", "DownloadFailed"),
            "Ready": ("False", "DownloadFailed"),
        },
    ),
    (
        "download failed now",
        P,
        {},
        [
            pod(
                init=(
                    container(
                        "download",
                        terminated_now=True,
                        exit_code=2,
                        terminated_message="sha256 mismatch",
                    ),
                )
            )
        ],
        {"ModelReady": ("False", "DownloadFailed"), "Ready": ("False", "DownloadFailed")},
    ),
    (
        "image pull",
        P,
        {},
        [
            pod(
                init=(
                    container(
                        "download", waiting_reason="ImagePullBackOff", waiting_message="not found"
                    ),
                )
            )
        ],
        {
            "ModelReady": ("False", "ImagePullFailed"),
            "Available": ("False", "ImagePullFailed"),
            "Ready": ("False", "ImagePullFailed"),
        },
    ),
    (
        "missing token secret",
        P,
        {},
        [
            pod(
                init=(
                    container(
                        "download",
                        waiting_reason="CreateContainerConfigError",
                        waiting_message='secret "hf" not found',
                    ),
                )
            )
        ],
        {
            "ModelReady": ("False", "ContainerConfigError"),
            "Available": ("False", "ContainerConfigError"),
        },
    ),
    (
        "no gpu free",
        GPU,
        {},
        [pod(unschedulable_message=("0/3 nodes are available: 3 Insufficient nvidia.com/gpu."))],
        {
            "ModelReady": ("False", "WaitingForPod"),
            "Available": ("False", "Unschedulable"),
            "Ready": ("False", "Unschedulable"),
        },
    ),
    (
        "model loading",
        P,
        {},
        [pod(init=(downloaded(),), main=(serving(ready=False),))],
        {
            "ModelReady": ("True", "ModelDownloaded"),
            "Available": ("False", "ModelLoading"),
            "Ready": ("False", "ModelLoading"),
        },
    ),
    (
        "probe failing",
        P,
        {},
        [
            pod(
                init=(downloaded(),),
                main=(
                    serving(ready=False, restart_count=2, exit_code=137, terminated_reason="Error"),
                ),
            )
        ],
        {"Available": ("False", "ProbeFailing"), "Ready": ("False", "ProbeFailing")},
    ),
    (
        "serve crash loop",
        P,
        {},
        [
            pod(
                init=(downloaded(),),
                main=(
                    container(
                        "inference",
                        waiting_reason="CrashLoopBackOff",
                        restart_count=4,
                        exit_code=1,
                        terminated_message="failed to load model",
                    ),
                ),
            )
        ],
        {
            "ModelReady": ("True", "ModelDownloaded"),
            "Available": ("False", "ContainerCrashing"),
            "Ready": ("False", "ContainerCrashing"),
        },
    ),
    (
        "engine killed by SIGSEGV, crash loop",
        P,
        {},
        [pod(init=(downloaded(),), main=(crashed(139, restart_count=3),))],
        {
            "ModelReady": ("True", "ModelDownloaded"),
            "Available": ("False", "EngineCrashed"),
            "Ready": ("False", "EngineCrashed"),
        },
    ),
    (
        "engine killed by SIGABRT, terminated now",
        P,
        {},
        [pod(init=(downloaded(),), main=(crashed(134, waiting_reason=None, terminated_now=True),))],
        {"Available": ("False", "EngineCrashed"), "Ready": ("False", "EngineCrashed")},
    ),
    (
        "engine OOMKilled, crash loop",
        P,
        {},
        [pod(init=(downloaded(),), main=(crashed(137, terminated_reason="OOMKilled"),))],
        {"Available": ("False", "EngineCrashed"), "Ready": ("False", "EngineCrashed")},
    ),
    (
        "engine SIGKILLed in a crash loop",
        P,
        {},
        [pod(init=(downloaded(),), main=(crashed(137),))],
        {"Available": ("False", "EngineCrashed"), "Ready": ("False", "EngineCrashed")},
    ),
    (
        "signal field without a signal exit code",
        P,
        {},
        [pod(init=(downloaded(),), main=(crashed(0, signal=11),))],
        {"Available": ("False", "EngineCrashed")},
    ),
    (
        "restarted after SIGSEGV, loading again",
        P,
        {},
        [
            pod(
                init=(downloaded(),),
                main=(
                    serving(ready=False, restart_count=1, exit_code=139, terminated_reason="Error"),
                ),
            )
        ],
        {"Available": ("False", "EngineCrashed"), "Ready": ("False", "EngineCrashed")},
    ),
    (
        "restarted after OOM kill, loading again",
        P,
        {},
        [
            pod(
                init=(downloaded(),),
                main=(
                    serving(
                        ready=False, restart_count=1, exit_code=137, terminated_reason="OOMKilled"
                    ),
                ),
            )
        ],
        {"Available": ("False", "EngineCrashed")},
    ),
    (
        "exit code above the signal range is a plain exit",
        P,
        {},
        [pod(init=(downloaded(),), main=(crashed(255),))],
        {"Available": ("False", "ContainerCrashing")},
    ),
    (
        "one replica serves, the other crashes",
        profile({"replicas": 2}),
        {"replicas": 2, "ready_replicas": 1, "updated_replicas": 2, "available_replicas": 1},
        [
            pod(init=(downloaded(),), main=(serving(),), ready=True),
            pod("chat-b", init=(downloaded(),), main=(crashed(139),)),
        ],
        {"Available": ("True", "MinimumReplicasAvailable"), "Ready": ("False", "EngineCrashed")},
    ),
    (
        "all ready",
        P,
        READY_DEPLOYMENT,
        [pod(init=(downloaded(),), main=(serving(),), ready=True)],
        {
            "ModelReady": ("True", "ModelDownloaded"),
            "Available": ("True", "MinimumReplicasAvailable"),
            "Ready": ("True", "AllReplicasReady"),
        },
    ),
    (
        "rolling out new config",
        P,
        {**READY_DEPLOYMENT, "config_checksum": "old"},
        [pod(init=(downloaded(),), main=(serving(),), ready=True)],
        {"Available": ("True", "MinimumReplicasAvailable"), "Ready": ("False", "Progressing")},
    ),
    (
        "second replica pending",
        profile({"replicas": 2}),
        {"replicas": 2, "ready_replicas": 1, "updated_replicas": 2, "available_replicas": 1},
        [pod(init=(downloaded(),), main=(serving(),), ready=True), pod("chat-b")],
        {"Available": ("True", "MinimumReplicasAvailable"), "Ready": ("False", "Progressing")},
    ),
    (
        "scaled to zero",
        profile({"replicas": 0}),
        {},
        [],
        {
            "ModelReady": ("Unknown", "ScaledToZero"),
            "Available": ("False", "ScaledToZero"),
            "Ready": ("False", "ScaledToZero"),
        },
    ),
    (
        "progress deadline",
        P,
        {"progress_deadline_exceeded": "ReplicaSet has timed out"},
        [],
        {"Available": ("False", "ProgressDeadlineExceeded")},
    ),
    (
        "replica failure",
        P,
        {"replica_failure": 'pods "chat-x" is forbidden: exceeded quota'},
        [],
        {"Available": ("False", "ReplicaFailure")},
    ),
]


@pytest.mark.parametrize(
    ("p", "deployment", "pods", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_condition_reasons(
    p: Profile,
    deployment: dict[str, Any] | None,
    pods: list[PodObservation],
    expected: dict[str, tuple[str, str]],
) -> None:
    observed = None if deployment is None else _deployment(p, **deployment)
    conds = _conds(_status(p, observed, pods))
    assert {k: conds[k] for k in expected} == expected
    assert list(conds) == ["ModelReady", "Available", "Ready"]


def test_messages_say_what_to_do() -> None:
    crash = pod(
        init=(
            container(
                "download",
                waiting_reason="CrashLoopBackOff",
                restart_count=3,
                exit_code=1,
                terminated_message="401 Unauthorized",
            ),
        )
    )
    msg = _message(_status(P, _deployment(P), [crash]), "ModelReady")
    assert "401 Unauthorized" in msg and "kubectl logs -n ai chat-abc -c download" in msg
    assert "Qwen/Qwen2.5-0.5B-Instruct-GGUF/qwen2.5-0.5b-instruct-q4_k_m.gguf@main" in msg
    gpu = pod(unschedulable_message="0/2 nodes are available: 2 Insufficient nvidia.com/gpu.")
    msg = _message(_status(GPU, _deployment(GPU), [gpu]), "Available")
    assert "Insufficient nvidia.com/gpu" in msg and "spec.resources.gpu" in msg


def test_long_messages_keep_their_tail() -> None:
    log = "x" * 5000 + "THE REAL ERROR"
    crash = pod(
        init=(container("download", terminated_now=True, exit_code=1, terminated_message=log),)
    )
    msg = _message(_status(P, _deployment(P), [crash]), "ModelReady")
    assert "THE REAL ERROR" in msg and len(msg) < 1200


def test_deleting_pods_are_ignored() -> None:
    old = pod(
        "chat-old",
        deleting=True,
        init=(container("download", waiting_reason="CrashLoopBackOff", exit_code=1),),
    )
    assert _conds(_status(P, _deployment(P), [old]))["ModelReady"] == ("False", "WaitingForPod")


def test_fields_besides_conditions() -> None:
    status = _status(P, _deployment(P, **READY_DEPLOYMENT), [])
    assert status["observedGeneration"] == 1
    assert (status["replicas"], status["readyReplicas"]) == (1, 1)
    assert (
        status["selector"] == "app.kubernetes.io/instance=chat,app.kubernetes.io/name=sentiric-llm"
    )
    assert status["endpoints"]["grpc"] == "chat.ai.svc:16071"
    assert status["endpoints"]["http"] == "http://chat.ai.svc:16070"
    assert status["model"] == {
        "repo": "Qwen/Qwen2.5-0.5B-Instruct-GGUF",
        "file": "qwen2.5-0.5b-instruct-q4_k_m.gguf",
        "revision": "main",
        "path": "/models/qwen2.5-0.5b-instruct-q4_k_m.gguf",
    }
    for c in status["conditions"]:
        assert c["lastTransitionTime"] == NOW and c["observedGeneration"] == 1


def test_model_facts_from_the_download_termination_message() -> None:
    facts = json.dumps({"sizeBytes": 491400032, "sha256": "AB" * 32})
    done = container("download", terminated_now=True, exit_code=0, terminated_message=facts)
    status = _status(P, _deployment(P), [pod(init=(done,), main=(serving(ready=False),))])
    assert status["model"]["sizeBytes"] == 491400032
    assert status["model"]["sha256"] == "ab" * 32
    plain = container("download", terminated_now=True, exit_code=0, terminated_message="done")
    status = _status(P, _deployment(P), [pod(init=(plain,))])
    assert "sizeBytes" not in status["model"]


def test_last_transition_time_moves_only_when_status_changes() -> None:
    loading = [pod(init=(downloaded(),), main=(serving(ready=False),))]
    first = _status(P, _deployment(P), loading)
    again = _status(P, _deployment(P), loading, previous=first, now=LATER)
    assert again == first
    ready = [pod(init=(downloaded(),), main=(serving(),), ready=True)]
    later = _status(P, _deployment(P, **READY_DEPLOYMENT), ready, previous=first, now=LATER)
    times = {c["type"]: c["lastTransitionTime"] for c in later["conditions"]}
    assert times == {"ModelReady": NOW, "Available": LATER, "Ready": LATER}


@pytest.mark.parametrize(
    ("monitoring", "expected"),
    [
        (Monitoring.NOT_REQUESTED, None),
        (Monitoring.APPLIED, ("True", "ServiceMonitorApplied")),
        (Monitoring.CRD_MISSING, ("False", "ServiceMonitorCRDMissing")),
    ],
)
def test_monitoring_condition_leaves_ready_alone(
    monitoring: Monitoring, expected: tuple[str, str] | None
) -> None:
    ready = [pod(init=(downloaded(),), main=(serving(),), ready=True)]
    conds = _conds(_status(P, _deployment(P, **READY_DEPLOYMENT), ready, monitoring=monitoring))
    assert conds.get("Monitoring") == expected
    assert conds["Ready"] == ("True", "AllReplicasReady")


def test_apply_failure_blocks_ready() -> None:
    ready = [pod(init=(downloaded(),), main=(serving(),), ready=True)]
    status = _status(
        P, _deployment(P, **READY_DEPLOYMENT), ready, apply_error="PATCH ...: field is immutable"
    )
    assert _conds(status)["Ready"] == ("False", "ApplyFailed")
    assert "immutable" in _message(status, "Ready")


def test_invalid_status() -> None:
    status = invalid_status(4, "spec.engine.parallel: too big", {}, NOW)
    assert status["observedGeneration"] == 4
    (cond,) = status["conditions"]
    assert (cond["type"], cond["status"], cond["reason"]) == ("Ready", "False", "InvalidSpec")
    assert "spec.engine.parallel" in cond["message"]


def test_status_patch_only_carries_changes() -> None:
    ready = [pod(init=(downloaded(),), main=(serving(),), ready=True)]
    status = _status(P, _deployment(P, **READY_DEPLOYMENT), ready)
    assert status_patch(status, status) == {}
    assert status_patch({}, status) == status
    fewer = {**status, "model": {k: v for k, v in status["model"].items() if k != "revision"}}
    bigger = {**status, "model": {**status["model"], "sizeBytes": 5}}
    removed = {"revision": None, "sizeBytes": None}
    assert status_patch(bigger, fewer) == {"model": {**fewer["model"], **removed}}
    later = _status(P, _deployment(P), [], previous=status, now=LATER)
    assert set(status_patch(status, later)) == {"replicas", "readyReplicas", "conditions"}


@pytest.mark.parametrize(
    ("serve", "spec", "expected"),
    [
        (crashed(139), {}, ["SIGSEGV (signal 11, exit code 139)", "inside the engine process"]),
        (crashed(134), {}, ["SIGABRT (signal 6, exit code 134)"]),
        (crashed(135), {}, ["SIGBUS (signal 7, exit code 135)"]),
        (
            crashed(137, terminated_reason="OOMKilled"),
            {"resources": {"limits": {"memory": "4Gi"}}},
            ["OOMKilled (exit code 137)", "spec.resources.limits.memory (now 4Gi)"],
        ),
        (
            crashed(137, terminated_reason="OOMKilled"),
            {},
            ["OOMKilled (exit code 137)", "no memory limit"],
        ),
        (crashed(137), {}, ["SIGKILL (signal 9, exit code 137)", "liveness probe"]),
    ],
    ids=["segv", "abort", "bus", "oom-with-limit", "oom-without-limit", "sigkill"],
)
def test_engine_crash_messages_name_the_signal_and_keep_the_last_log_lines(
    serve: ContainerObservation, spec: dict[str, Any], expected: list[str]
) -> None:
    p = profile(spec)
    crash = pod(init=(downloaded(),), main=(serve,))
    msg = _message(_status(p, _deployment(p), [crash]), "Available")
    for part in expected:
        assert part in msg, msg
    assert "OOMKilled" not in msg or "SIGKILL" not in msg
    assert "Last log lines: loading model | llama_decode: failed." in msg
    assert "kubectl logs -n ai chat-abc -c inference --previous" in msg
    assert "2 restarts" in msg


def test_engine_crash_message_keeps_only_the_end_of_a_long_log() -> None:
    # FallbackToLogsOnError hands over up to 80 lines / 2 KiB; the condition keeps the last
    # ten lines, at most 600 characters, so `kubectl describe` stays readable.
    log = "\n".join(f"line {i} " + "y" * 30 for i in range(80)) + "\nSegmentation fault"
    serve = crashed(139, terminated_message=log)
    msg = _message(_status(P, _deployment(P), [pod(init=(downloaded(),), main=(serve,))]), "Ready")
    assert msg.count("line ") == 9 and "line 71 " in msg and "line 70 " not in msg
    assert "Segmentation fault" in msg and len(msg) < 1200
    long_line = crashed(139, terminated_message="z" * 5000 + " THE END")
    msg = _message(
        _status(P, _deployment(P), [pod(init=(downloaded(),), main=(long_line,))]), "Ready"
    )
    assert "THE END" in msg and len(msg) < 1200


def test_engine_crash_without_log_says_so() -> None:
    serve = crashed(139, terminated_message=None)
    msg = _message(_status(P, _deployment(P), [pod(init=(downloaded(),), main=(serve,))]), "Ready")
    assert "Last log lines: none." in msg


SHAPE_REPORT = {
    "nLayer": 24,
    "nHeadKv": 2,
    "keyLength": 64,
    "valueLength": 64,
    "nEmbd": 896,
    "nVocab": 151936,
    "nCtxTrain": 32768,
}
SIZE = 491_400_032
AUTO = profile({"engine": {"parallel": 0, "contextSize": 0}})


def _reporting_pod(p: Profile, *, checksum: str | None = None, **report: Any) -> PodObservation:
    facts = {"sizeBytes": SIZE, "sha256": "ab" * 32, "shape": SHAPE_REPORT, **report}
    done = container(
        "download", terminated_now=True, exit_code=0, terminated_message=json.dumps(facts)
    )
    return pod(
        init=(done,),
        main=(serving(ready=False),),
        config_checksum=_checksum(p) if checksum is None else checksum,
    )


def test_reported_shape_becomes_status_model_shape_and_plan() -> None:
    status = _status(AUTO, _deployment(AUTO), [_reporting_pod(AUTO)])
    assert status["model"]["shape"] == SHAPE_REPORT
    shape = known_shape(AUTO, status)
    assert shape is not None and shape.weights_bytes == SIZE
    assert status["plan"] == plan_status(AUTO.spec, shape)
    plan = status["plan"]
    assert (plan["parallel"], plan["contextSize"], plan["kvCacheType"]) == (8, 4096, "f16")
    assert plan["memoryRequest"] == mebibytes(plan["memoryBytes"])
    assert "automatic: parallel, contextSize" in plan["summary"]


def test_no_plan_before_a_shape_is_reported() -> None:
    facts = json.dumps({"sizeBytes": SIZE, "sha256": "ab" * 32})  # an older download
    done = container("download", terminated_now=True, exit_code=0, terminated_message=facts)
    status = _status(P, _deployment(P), [pod(init=(done,), config_checksum=_checksum(P))])
    assert status["model"]["sizeBytes"] == SIZE
    assert "shape" not in status["model"] and "plan" not in status


def test_shape_of_a_pod_of_an_older_config_is_not_taken() -> None:
    # During a rollout to another model, the old pods still report the old model.
    old = _reporting_pod(AUTO, checksum="older-config", shape={**SHAPE_REPORT, "nLayer": 80})
    status = _status(AUTO, _deployment(AUTO), [old])
    assert "shape" not in status["model"] and "plan" not in status
    status = _status(AUTO, _deployment(AUTO), [old, _reporting_pod(AUTO)])
    assert status["model"]["shape"] == SHAPE_REPORT


def test_known_shape_outlives_its_pods_for_the_same_model_only() -> None:
    reported = _status(AUTO, _deployment(AUTO), [_reporting_pod(AUTO)])
    # Scaled to zero, or the reporting pod replaced by one still downloading: kept.
    kept = _status(AUTO, _deployment(AUTO), [], previous=reported, now=LATER)
    assert kept["model"]["shape"] == SHAPE_REPORT and kept["plan"] == reported["plan"]
    assert kept["model"]["sizeBytes"] == SIZE
    # Another file: the old shape says nothing about it.
    other = profile(
        {
            "engine": {"parallel": 0, "contextSize": 0},
            "model": {"huggingFace": {"file": "qwen2.5-0.5b-instruct-q8_0.gguf"}},
        }
    )
    dropped = _status(other, _deployment(other), [], previous=reported, now=LATER)
    assert "shape" not in dropped["model"] and "plan" not in dropped
    # ...and the merge patch removes both.
    changes = status_patch(reported, dropped)
    assert changes["plan"] is None and changes["model"]["shape"] is None


def test_plan_follows_the_spec_for_the_same_shape() -> None:
    reported = _status(AUTO, _deployment(AUTO), [_reporting_pod(AUTO)])
    fixed = profile({"engine": {"parallel": 2, "contextSize": 2048}})
    status = _status(fixed, _deployment(fixed), [], previous=reported, now=LATER)
    assert (status["plan"]["parallel"], status["plan"]["contextSize"]) == (2, 2048)
    assert status["plan"]["memoryBytes"] < reported["plan"]["memoryBytes"]


def test_a_malformed_shape_report_leaves_no_plan() -> None:
    broken = _reporting_pod(AUTO, shape={**SHAPE_REPORT, "nLayer": "many"})
    status = _status(AUTO, _deployment(AUTO), [broken])
    assert "shape" not in status["model"] and "plan" not in status
    assert status["model"]["sizeBytes"] == SIZE


def test_a_download_killed_by_the_oom_killer_says_so() -> None:
    killed = container(
        "download",
        waiting_reason="CrashLoopBackOff",
        restart_count=2,
        exit_code=137,
        terminated_reason="OOMKilled",
    )
    msg = _message(_status(P, _deployment(P), [pod(init=(killed,))]), "ModelReady")
    assert "failed (OOMKilled (exit code 137)" in msg and "2 restarts" in msg
    plain = container("download", terminated_now=True, exit_code=1, terminated_message="404")
    msg = _message(_status(P, _deployment(P), [pod(init=(plain,))]), "ModelReady")
    assert "failed (exit code 1, 0 restarts): 404" in msg


DRAFT_HUB = {"repo": "Qwen/Qwen2.5-0.5B-Instruct-GGUF", "file": "qwen2.5-0.5b-instruct-q4_k_m.gguf"}
DRAFTING = profile(
    {
        "engine": {
            "parallel": 0,
            "contextSize": 0,
            "draftTokens": 4,
            "draftModel": {"huggingFace": DRAFT_HUB},
        }
    }
)
DRAFT_REPORT = {
    **DRAFT_HUB,
    "revision": "main",
    "sizeBytes": 200_000_000,
    "sha256": "cd" * 32,
    "shape": {**SHAPE_REPORT, "nLayer": 12},
}


def test_a_reported_draft_model_is_kept_and_counted_in_the_plan() -> None:
    plain = _status(DRAFTING, _deployment(DRAFTING), [_reporting_pod(DRAFTING)])
    status = _status(
        DRAFTING, _deployment(DRAFTING), [_reporting_pod(DRAFTING, draft=DRAFT_REPORT)]
    )
    assert status["model"]["draft"] == {
        **DRAFT_HUB,
        "revision": "main",
        "sizeBytes": DRAFT_REPORT["sizeBytes"],
        "shape": DRAFT_REPORT["shape"],
    }
    assert "draft" not in plain["model"]
    assert status["plan"]["memoryBytes"] > plain["plan"]["memoryBytes"] + 200_000_000
    assert "draft model" in status["plan"]["summary"]
    # The reporting pod gone: the same draft file stays known, so the request does not flap.
    kept = _status(DRAFTING, _deployment(DRAFTING), [], previous=status, now=LATER)
    assert kept["model"]["draft"] == status["model"]["draft"]
    assert kept["plan"] == status["plan"]
    # Another draft in the spec: the old report says nothing about it.
    other = profile(
        {
            "engine": {
                "parallel": 0,
                "contextSize": 0,
                "draftTokens": 4,
                "draftModel": {"huggingFace": {**DRAFT_HUB, "file": "other.gguf"}},
            }
        }
    )
    moved = _status(other, _deployment(other), [], previous=status, now=LATER)
    assert "draft" not in moved["model"]
    assert moved["plan"]["memoryBytes"] == plain["plan"]["memoryBytes"]
