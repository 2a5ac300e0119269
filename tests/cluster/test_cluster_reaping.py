"""A test run killed before its teardown leaves no control plane running (issue 11).

Each test starts a disposable cluster of its own with hack/cluster-up.sh, owned by a stand-in
for pytest (a `sleep` process), kills that owner with SIGKILL and checks that etcd, the API
server, the controller manager, the scheduler and kwok are all gone within a bound: once by
the watchdog tied to the owner, once by the next cluster-up's reap when the watchdog died too.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .conftest import (
    DOWN_TIMEOUT_S,
    HACK,
    UP_TIMEOUT_S,
    _stop_pids,
    cluster_workdir,
    component_pids,
    owner_state_file,
    run_script,
    wait_for,
    watchdog_pid,
)

# The watchdog polls every second, then cluster-down stops the processes (SIGTERM, a grace
# period, SIGKILL); 60 s leaves room for a loaded 2-core machine.
REAP_BOUND_S = 60
COMPONENTS = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok-controller",
)


def running(pid: int, marker: str) -> bool:
    """`pid` runs (not a zombie) and its command line still names `marker` (pids get reused)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z" and marker in cmdline


@dataclass
class OwnedCluster:
    name: str
    owner: subprocess.Popen[bytes]
    pids: list[int]
    watchdog: int

    @property
    def marker(self) -> str:
        return str(cluster_workdir(self.name))

    def alive(self) -> list[int]:
        return [pid for pid in self.pids if running(pid, self.marker)]


@pytest.fixture
def owned_cluster() -> Iterator[OwnedCluster]:
    name = f"sentiric-reap-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    owner = subprocess.Popen(["sleep", "900"], start_new_session=True)
    env = {**os.environ, "SENTIRIC_CLUSTER_OWNER_PID": str(owner.pid)}
    pids: list[int] = []
    watchdog: int | None = None
    try:
        proc = run_script(["bash", str(HACK / "cluster-up.sh"), name], UP_TIMEOUT_S, env=env)
        pids = component_pids(name)
        watchdog = watchdog_pid(name)
        assert proc.returncode == 0, proc.stderr
        assert watchdog is not None, "cluster-up.sh wrote no watchdog pid"
        yield OwnedCluster(name, owner, pids, watchdog)
    finally:
        pids = sorted(set(pids) | set(component_pids(name)))
        try:
            with contextlib.suppress(subprocess.TimeoutExpired):
                run_script(["bash", str(HACK / "cluster-down.sh"), name], DOWN_TIMEOUT_S)
        finally:
            _stop_pids(pids, str(cluster_workdir(name)))
            if watchdog is not None:
                _stop_pids([watchdog], f"watchdog.sh {name}", grace=5.0)
            if owner.poll() is None:
                owner.kill()
            owner.wait(timeout=10)


def test_killing_the_owner_stops_every_component(owned_cluster: OwnedCluster) -> None:
    c = owned_cluster
    names = {p.stem for p in (cluster_workdir(c.name) / "pids").glob("*.pid")}
    assert set(COMPONENTS) <= names, names
    assert len(c.alive()) == len(c.pids) >= len(COMPONENTS)
    assert running(c.watchdog, f"watchdog.sh {c.name}")

    started = time.monotonic()
    c.owner.send_signal(signal.SIGKILL)
    c.owner.wait(timeout=10)
    wait_for(lambda: not c.alive(), timeout=REAP_BOUND_S, message="every component to stop")
    took = time.monotonic() - started
    wait_for(
        lambda: not running(c.watchdog, f"watchdog.sh {c.name}"),
        timeout=10,
        message="the watchdog to exit",
    )
    assert not cluster_workdir(c.name).exists()
    assert not owner_state_file(c.name).exists()
    print(f"reaped {len(c.pids)} processes {took:.1f}s after the owner was killed")


def test_the_next_cluster_up_reaps_when_the_watchdog_died_too(
    owned_cluster: OwnedCluster,
) -> None:
    c = owned_cluster
    os.kill(c.watchdog, signal.SIGKILL)
    wait_for(
        lambda: not running(c.watchdog, f"watchdog.sh {c.name}"),
        timeout=10,
        message="the watchdog to die",
    )
    c.owner.send_signal(signal.SIGKILL)
    c.owner.wait(timeout=10)
    time.sleep(2)
    assert len(c.alive()) == len(c.pids), "nothing should have reaped the cluster yet"

    # What the next `hack/cluster-up.sh` runs before starting its own cluster.
    proc = run_script(["bash", str(HACK / "cluster" / "reap.sh")], REAP_BOUND_S)
    assert proc.returncode == 0, proc.stderr
    assert f"reaping cluster {c.name}" in proc.stderr
    assert not c.alive()
    assert not owner_state_file(c.name).exists()
