"""A test run that dies leaves no cluster behind: the watchdog and cluster-up's reap.

These run the real scripts (hack/cluster/{lib,watchdog,reap}.sh, hack/cluster-down.sh) on
fake clusters: a kwok work dir whose pid files name sleeping processes that carry the work
dir on their command line, as kwokctl's components do. No Go build and no API server are
needed; tests/cluster/test_cluster_reaping.py does the same with a real control plane.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

HACK = Path(__file__).resolve().parents[3] / "hack"
REAP_BOUND_S = 20.0


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.1)


def running(pid: int) -> bool:
    """True while `pid` exists and is not a zombie (a reaped child of ours is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@dataclass
class Sandbox:
    """A private SENTIRIC_CACHE with fake clusters; every process it starts is ended by pid."""

    cache: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    watchdogs: list[int] = field(default_factory=list)

    @property
    def kwok(self) -> Path:
        return self.cache / "kwok"

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update({"SENTIRIC_CACHE": str(self.cache), "SENTIRIC_CLUSTER_WATCHDOG_INTERVAL": "0.2"})
        env.update(extra)
        return env

    def state(self, name: str) -> Path:
        return self.kwok / "owners" / f"{name}.state"

    def state_value(self, name: str, key: str) -> str:
        for line in self.state(name).read_text().splitlines():
            if line.startswith(f"{key}="):
                return line.split("=", 1)[1]
        raise KeyError(key)

    def spawn(
        self, argv: list[str], stdout: int = subprocess.DEVNULL, cwd: Path | None = None
    ) -> subprocess.Popen[bytes]:
        # A session of its own, like kwokctl's components: the owner's death does not reach it.
        proc = subprocess.Popen(argv, start_new_session=True, stdout=stdout, cwd=cwd)
        self.procs.append(proc)
        return proc

    def owner(self) -> subprocess.Popen[bytes]:
        return self.spawn(["sleep", "300"])

    def fake_cluster(self, name: str, components: int = 3) -> list[int]:
        workdir = self.kwok / "clusters" / name
        (workdir / "pids").mkdir(parents=True)
        pids = []
        for index in range(components):
            proc = self.spawn(
                [sys.executable, "-c", "import time; time.sleep(300)", f"--workdir={workdir}"]
            )
            (workdir / "pids" / f"component-{index}.pid").write_text(f"{proc.pid}\n")
            pids.append(proc.pid)
        return pids

    def register(self, name: str, owner_pid: int, **env: str) -> int:
        """What cluster-up does with SENTIRIC_CLUSTER_OWNER_PID: state file, watchdog, pids."""
        subprocess.run(
            [
                "bash",
                "-c",
                f'source {HACK}/cluster/lib.sh && owner_register "$0" "$1" && '
                'owner_record_pids "$0"',
                name,
                str(owner_pid),
            ],
            env=self.env(**env),
            check=True,
            timeout=30,
        )
        watchdog = int(self.state_value(name, "watchdog_pid"))
        self.watchdogs.append(watchdog)
        return watchdog

    def script(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", *argv], env=self.env(), capture_output=True, text=True, timeout=120, check=True
        )

    def reaped_log(self) -> str:
        path = self.kwok / "owners" / "reaped.log"
        return path.read_text() if path.exists() else ""

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
        for pid in self.watchdogs:
            with contextlib.suppress(OSError):
                if b"watchdog.sh" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    os.kill(pid, signal.SIGKILL)


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    box = Sandbox(cache=tmp_path / "cache")
    try:
        yield box
    finally:
        box.stop_all()


def all_gone(pids: list[int]) -> Callable[[], bool]:
    return lambda: not any(running(pid) for pid in pids)


def test_the_watchdog_reaps_the_cluster_when_its_owner_is_killed(sandbox: Sandbox) -> None:
    components = sandbox.fake_cluster("sentiric-test-crash")
    owner = sandbox.owner()
    watchdog = sandbox.register("sentiric-test-crash", owner.pid)
    assert sandbox.state_value("sentiric-test-crash", "component_pids").split() == [
        str(pid) for pid in components
    ]
    time.sleep(0.5)
    assert all(running(pid) for pid in components) and running(watchdog)

    started = time.monotonic()
    owner.send_signal(signal.SIGKILL)
    wait_until(all_gone(components), REAP_BOUND_S, "the components to be stopped")
    reaped_in = time.monotonic() - started
    wait_until(lambda: not running(watchdog), 10, "the watchdog to exit")
    assert not sandbox.state("sentiric-test-crash").exists()
    assert not (sandbox.kwok / "clusters" / "sentiric-test-crash").exists()
    assert "sentiric-test-crash reaped by its watchdog" in sandbox.reaped_log()
    assert reaped_in < REAP_BOUND_S


def test_the_watchdog_leaves_quietly_after_a_normal_teardown(sandbox: Sandbox) -> None:
    components = sandbox.fake_cluster("sentiric-test-ok")
    owner = sandbox.owner()
    watchdog = sandbox.register("sentiric-test-ok", owner.pid)
    sandbox.script(str(HACK / "cluster-down.sh"), "sentiric-test-ok")
    assert not any(running(pid) for pid in components)
    wait_until(lambda: not running(watchdog), 10, "the watchdog to exit")
    assert owner.poll() is None  # the owner is not the watchdog's business
    assert sandbox.reaped_log() == ""


def test_the_watchdog_is_bounded_in_time(sandbox: Sandbox) -> None:
    components = sandbox.fake_cluster("sentiric-test-long")
    owner = sandbox.owner()
    watchdog = sandbox.register(
        "sentiric-test-long", owner.pid, SENTIRIC_CLUSTER_WATCHDOG_MAX_S="1"
    )
    wait_until(lambda: not running(watchdog), 10, "the watchdog to give up")
    # It leaves the cluster to its owner (or to the next cluster-up's reap), never kills it.
    assert all(running(pid) for pid in components)
    assert sandbox.state("sentiric-test-long").exists()


def test_cluster_up_reaps_what_a_dead_owner_and_a_dead_watchdog_left(sandbox: Sandbox) -> None:
    orphan = sandbox.fake_cluster("sentiric-test-orphan")
    owner = sandbox.owner()
    watchdog = sandbox.register("sentiric-test-orphan", owner.pid)
    # The watchdog dies with the owner (a reboot, a killed session): nobody reaped.
    os.kill(watchdog, signal.SIGKILL)
    wait_until(lambda: not running(watchdog), 10, "the watchdog to die")
    owner.send_signal(signal.SIGKILL)
    owner.wait(timeout=10)

    alive_owner = sandbox.owner()
    owned = sandbox.fake_cluster("sentiric-test-owned")
    sandbox.register("sentiric-test-owned", alive_owner.pid)
    by_hand = sandbox.fake_cluster("sentiric")  # hack/cluster-up.sh by hand: no owner
    # A cluster of a test run from before the state files: its name holds the run's pid.
    gone_pid = sandbox.spawn(["true"])
    gone_pid.wait(timeout=10)
    legacy = sandbox.fake_cluster(f"sentiric-test-{gone_pid.pid}")
    live_legacy = sandbox.fake_cluster(f"sentiric-test-{os.getpid()}")

    started = time.monotonic()
    proc = sandbox.script(str(HACK / "cluster" / "reap.sh"))
    assert time.monotonic() - started < REAP_BOUND_S

    assert not any(running(pid) for pid in orphan + legacy), proc.stderr
    assert all(running(pid) for pid in owned + by_hand + live_legacy)
    assert not sandbox.state("sentiric-test-orphan").exists()
    assert sandbox.state("sentiric-test-owned").exists()
    log = sandbox.reaped_log()
    assert "sentiric-test-orphan reaped by cluster-up" in log
    assert f"sentiric-test-{gone_pid.pid} reaped by cluster-up" in log
    assert "sentiric-test-owned" not in log and f"sentiric-test-{os.getpid()}" not in log


def test_a_reused_owner_pid_does_not_keep_a_cluster_alive(sandbox: Sandbox) -> None:
    components = sandbox.fake_cluster("sentiric-test-reused")
    owners = sandbox.kwok / "owners"
    owners.mkdir(parents=True, exist_ok=True)
    # Our own pid, but with another start time: the process that owned the cluster is gone
    # and the pid now belongs to someone else.
    (owners / "sentiric-test-reused.state").write_text(
        f"owner_pid={os.getpid()}\nowner_start=1\nwatchdog_pid={os.getpid()}\nwatchdog_start=1\n"
        f"component_pids={' '.join(map(str, components))}\n"
    )
    sandbox.script(str(HACK / "cluster" / "reap.sh"))
    assert not any(running(pid) for pid in components)


def test_pids_in_the_state_file_are_stopped_even_without_the_work_dir(sandbox: Sandbox) -> None:
    components = sandbox.fake_cluster("sentiric-test-nodir")
    owner = sandbox.owner()
    sandbox.register("sentiric-test-nodir", owner.pid)
    # kwokctl's pid files are gone (a half-finished delete); the state file still has them.
    for pid_file in (sandbox.kwok / "clusters" / "sentiric-test-nodir" / "pids").iterdir():
        pid_file.unlink()
    sandbox.script(str(HACK / "cluster-down.sh"), "sentiric-test-nodir")
    assert not any(running(pid) for pid in components)
    assert not sandbox.state("sentiric-test-nodir").exists()


def test_only_processes_of_the_cluster_are_signalled(sandbox: Sandbox) -> None:
    # A recorded pid now used by an unrelated process (no work dir on its command line).
    components = sandbox.fake_cluster("sentiric-test-reuse")
    stranger = sandbox.spawn(["sleep", "300"])
    pid_file = sandbox.kwok / "clusters" / "sentiric-test-reuse" / "pids" / "stranger.pid"
    pid_file.write_text(f"{stranger.pid}\n")
    sandbox.script(str(HACK / "cluster-down.sh"), "sentiric-test-reuse")
    assert not any(running(pid) for pid in components)
    assert stranger.poll() is None


def test_helper_processes_of_a_killed_test_run_stop_with_it(sandbox: Sandbox) -> None:
    # A stand-in for pytest starts a helper (the operator, in the cluster tests) the way the
    # cluster tests do, prints its pid, and is then killed without any teardown.
    parent = sandbox.spawn(
        [
            sys.executable,
            "-c",
            "import subprocess, sys, time\n"
            "from tests.cluster.conftest import dies_with_this_process\n"
            "child = subprocess.Popen(dies_with_this_process(['sleep', '300']))\n"
            "print(child.pid, flush=True)\n"
            "time.sleep(300)\n",
        ],
        stdout=subprocess.PIPE,
        cwd=HACK.parent,
    )
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    try:
        # Popen returns once setpriv runs; it sets the death signal and then becomes `sleep`.
        wait_until(
            lambda: Path(f"/proc/{child}/cmdline").read_bytes().startswith(b"sleep\0"),
            10,
            "setpriv to set the death signal and start the helper",
        )
        parent.send_signal(signal.SIGKILL)
        wait_until(lambda: not running(child), 10, "the helper to stop with its parent")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)
