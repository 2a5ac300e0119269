"""observations: Pod and Deployment bodies as the API returns them -> small typed values."""

from __future__ import annotations

from typing import Any

from sentiric_operator.observations import observe_deployment, observe_pod

POD: dict[str, Any] = {
    "metadata": {"name": "chat-7d9-x", "annotations": {"checksum/config": "abc"}},
    "status": {
        "phase": "Pending",
        "conditions": [
            {"type": "PodScheduled", "status": "True"},
            {"type": "Ready", "status": "False", "reason": "ContainersNotReady"},
        ],
        "initContainerStatuses": [
            {
                "name": "download",
                "ready": False,
                "restartCount": 2,
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 20s"}},
                "lastState": {
                    "terminated": {
                        "exitCode": 1,
                        "reason": "Error",
                        "message": "RepositoryNotFoundError",
                    }
                },
            }
        ],
        "containerStatuses": [
            {
                "name": "inference",
                "ready": False,
                "restartCount": 0,
                "state": {"waiting": {"reason": "PodInitializing"}},
            }
        ],
    },
}


def test_pod_in_a_download_crash_loop() -> None:
    pod = observe_pod(POD)
    assert (pod.name, pod.phase, pod.ready, pod.deleting) == ("chat-7d9-x", "Pending", False, False)
    assert pod.config_checksum == "abc"
    assert pod.unschedulable_message is None
    download = pod.init_container("download")
    assert download is not None
    assert (download.waiting_reason, download.restart_count) == ("CrashLoopBackOff", 2)
    assert (download.exit_code, download.terminated_message) == (1, "RepositoryNotFoundError")
    assert download.terminated_now is False
    serve = pod.container("inference")
    assert serve is not None and serve.waiting_reason == "PodInitializing"


def test_unschedulable_and_deleting_pod() -> None:
    pod = observe_pod(
        {
            "metadata": {"name": "p", "deletionTimestamp": "2026-01-01T00:00:00Z"},
            "status": {
                "conditions": [
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": "0/1 nodes are available: 1 Insufficient nvidia.com/gpu.",
                    }
                ]
            },
        }
    )
    assert pod.deleting is True
    assert pod.unschedulable_message == "0/1 nodes are available: 1 Insufficient nvidia.com/gpu."
    assert observe_pod({"metadata": {"name": "q"}}).phase == "Pending"


def test_running_ready_pod() -> None:
    pod = observe_pod(
        {
            "metadata": {"name": "r"},
            "status": {
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": "True"}],
                "initContainerStatuses": [
                    {
                        "name": "download",
                        "ready": True,
                        "restartCount": 0,
                        "state": {"terminated": {"exitCode": 0, "reason": "Completed"}},
                    }
                ],
                "containerStatuses": [
                    {
                        "name": "inference",
                        "ready": True,
                        "restartCount": 0,
                        "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}},
                    }
                ],
            },
        }
    )
    download = pod.init_container("download")
    serve = pod.container("inference")
    assert pod.ready and download is not None and serve is not None
    assert (download.terminated_now, download.exit_code) == (True, 0)
    assert serve.running and serve.ready


def test_deployment() -> None:
    d = observe_deployment(
        {
            "metadata": {"name": "chat", "generation": 3},
            "spec": {
                "replicas": 2,
                "template": {"metadata": {"annotations": {"checksum/config": "c1"}}},
            },
            "status": {
                "observedGeneration": 2,
                "replicas": 3,
                "readyReplicas": 1,
                "updatedReplicas": 1,
                "availableReplicas": 1,
                "conditions": [
                    {
                        "type": "Progressing",
                        "status": "False",
                        "reason": "ProgressDeadlineExceeded",
                        "message": 'ReplicaSet "chat-1" has timed out progressing.',
                    },
                    {"type": "ReplicaFailure", "status": "True", "message": "exceeded quota"},
                ],
            },
        }
    )
    assert (d.generation, d.observed_generation, d.desired_replicas) == (3, 2, 2)
    assert (d.replicas, d.ready_replicas, d.updated_replicas, d.available_replicas) == (3, 1, 1, 1)
    assert d.config_checksum == "c1"
    assert d.progress_deadline_exceeded is not None and "timed out" in d.progress_deadline_exceeded
    assert d.replica_failure == "exceeded quota"
    fresh = observe_deployment({"metadata": {"name": "new"}, "spec": {}})
    assert (fresh.desired_replicas, fresh.replicas, fresh.replica_failure) == (1, 0, None)


def test_serve_container_killed_by_a_signal() -> None:
    pod = observe_pod(
        {
            "metadata": {"name": "s"},
            "status": {
                "containerStatuses": [
                    {
                        "name": "inference",
                        "restartCount": 3,
                        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                        "lastState": {
                            "terminated": {
                                "exitCode": 139,
                                "signal": 11,
                                "reason": "Error",
                                "message": "Fatal Python error: Segmentation fault",
                            }
                        },
                    },
                    {
                        "name": "sidecar",
                        "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}},
                    },
                ],
            },
        }
    )
    serve = pod.container("inference")
    assert serve is not None
    assert (serve.exit_code, serve.signal, serve.terminated_now) == (139, 11, False)
    assert serve.terminated_message == "Fatal Python error: Segmentation fault"
    other = pod.container("sidecar")
    assert other is not None
    assert (other.exit_code, other.signal, other.terminated_reason) == (137, None, "OOMKilled")
