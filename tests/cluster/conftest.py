"""Fixtures for tests against the local kwok control plane: `cluster` (session) and `namespace`.

The control plane is built from Go modules by hack/cluster-build.sh and run as local processes
by hack/cluster-up.sh (docs/local-cluster.md). Tests get a `Cluster` handle:

    def test_something(cluster: Cluster, namespace: str) -> None:
        cluster.kubectl("-n", namespace, "apply", "-f", "-", input=manifest)
        apps = kubernetes.client.AppsV1Api(cluster.api_client())
        cluster.wait_for(lambda: ..., timeout=30, message="deployment ready")

Set SENTIRIC_KUBECONFIG to the kubeconfig of an already running cluster (hack/cluster-up.sh
prints it) to skip the start-up and teardown while iterating locally.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import pytest

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

REPO_ROOT = Path(__file__).resolve().parents[2]
HACK = REPO_ROOT / "hack"
CLUSTER_TESTS = Path(__file__).resolve().parent
SERVICEMONITOR_CRD = "servicemonitors.monitoring.coreos.com"
INFERENCEPOOL_CRD = "inferencepools.inference.networking.k8s.io"

# A cold build compiles Kubernetes from source (tens of minutes on 2 cores); bound it anyway.
BUILD_TIMEOUT_S = 90 * 60
UP_TIMEOUT_S = 240
DOWN_TIMEOUT_S = 120

T = TypeVar("T")

_build_result: pytest.StashKey[Path | BaseException] = pytest.StashKey()


def wait_for(
    predicate: Callable[[], T | None],
    timeout: float = 60,
    interval: float = 0.5,
    message: str = "condition",
) -> T:
    """Poll `predicate` until it returns a truthy value (returned) or `timeout` seconds pass.

    Exceptions raised by the predicate count as "not yet" (the API may not know a kind right
    after its CRD is created); the last one is chained to the TimeoutError for diagnosis.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    attempts = 0
    while True:
        attempts += 1
        try:
            value = predicate()
        except Exception as exc:
            last_error = exc
        else:
            if value:
                return value
        if time.monotonic() >= deadline:
            raise TimeoutError(
                f"timed out after {timeout:.0f}s ({attempts} attempts) waiting for {message}"
            ) from last_error
        time.sleep(interval)


@dataclass
class Cluster:
    """A running local control plane and the tools built for it."""

    name: str
    kubeconfig: Path
    bin_dir: Path
    # Helm keeps caches and repositories here, never in the user's home.
    helm_home: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="sentiric-helm-")))

    @property
    def servicemonitor_crd_path(self) -> Path:
        """The ServiceMonitor CRD manifest copied from the prometheus-operator module."""
        return self.bin_dir.parent / "crds" / "monitoring.coreos.com_servicemonitors.yaml"

    @property
    def inferencepool_crd_path(self) -> Path:
        """The InferencePool CRD manifest copied from the gateway-api-inference-extension
        module (hack/cluster-build.sh)."""
        return next((self.bin_dir.parent / "crds").glob("inference.networking.k8s.io_*.yaml"))

    def env(self) -> dict[str, str]:
        """Environment for child processes: our binaries first on PATH, our kubeconfig."""
        env = dict(os.environ)
        env["PATH"] = f"{self.bin_dir}{os.pathsep}{env.get('PATH', '')}"
        env["KUBECONFIG"] = str(self.kubeconfig)
        env["HELM_CACHE_HOME"] = str(self.helm_home / "cache")
        env["HELM_CONFIG_HOME"] = str(self.helm_home / "config")
        env["HELM_DATA_HOME"] = str(self.helm_home / "data")
        return env

    def _run(
        self, argv: list[str], input: str | None, check: bool, timeout: float
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            argv,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env(),
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{Path(argv[0]).name} {' '.join(argv[1:])} exited "
                f"{proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
        return proc

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run the built kubectl against this cluster; raise with its output when `check` fails."""
        argv = [str(self.bin_dir / "kubectl"), "--kubeconfig", str(self.kubeconfig), *args]
        return self._run(argv, input, check, timeout)

    def helm(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run the built helm against this cluster; raise with its output when `check` fails."""
        argv = [str(self.bin_dir / "helm"), "--kubeconfig", str(self.kubeconfig), *args]
        return self._run(argv, input, check, timeout)

    def api_client(self) -> ApiClient:
        """A new official-client ApiClient for this cluster (close it, or use it in `with`)."""
        from kubernetes import config

        api: ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(self.kubeconfig)
        )
        return api

    def wait_for(
        self,
        predicate: Callable[[], T | None],
        timeout: float = 60,
        interval: float = 0.5,
        message: str = "condition",
    ) -> T:
        """Bounded polling; see the module-level `wait_for`."""
        return wait_for(predicate, timeout=timeout, interval=interval, message=message)

    def wait_for_crd(self, name: str, timeout: float = 60) -> None:
        """Wait until CRD `name` is Established and its resource is served.

        `kubectl wait --for=condition=Established` fails outright while a new CRD has no
        conditions yet, so this polls instead.
        """
        jsonpath = '{.status.conditions[?(@.type=="Established")].status}'

        def established() -> bool:
            got = self.kubectl("get", "crd", name, "-o", f"jsonpath={jsonpath}", check=False)
            return got.stdout.strip() == "True"

        self.wait_for(established, timeout=timeout, message=f"CRD {name} to be Established")
        plural, _, group = name.partition(".")
        self.wait_for(
            lambda: self.kubectl("get", f"{plural}.{group}", "-A", check=False).returncode == 0,
            timeout=timeout,
            message=f"the {name} resource to be served",
        )

    def install_servicemonitor_crd(self) -> None:
        """Create the ServiceMonitor CRD (idempotent) and wait until the API serves it."""
        self.kubectl("apply", "--server-side", "-f", str(self.servicemonitor_crd_path))
        self.wait_for_crd(SERVICEMONITOR_CRD)

    def install_inferencepool_crd(self) -> None:
        """Create the InferencePool CRD (idempotent) and wait until the API serves it."""
        self.kubectl("apply", "--server-side", "-f", str(self.inferencepool_crd_path))
        self.wait_for_crd(INFERENCEPOOL_CRD)

    def remove_servicemonitor_crd(self) -> None:
        self.remove_crd(SERVICEMONITOR_CRD)

    def remove_crd(self, name: str) -> None:
        """Delete CRD `name` (idempotent) and wait until it is gone."""
        self.kubectl(
            "delete", "crd", name, "--ignore-not-found", "--wait=true", "--timeout=60s", timeout=90
        )

    def pids(self) -> list[int]:
        """Pids of this cluster's component processes, from kwokctl's pid files."""
        return component_pids(self.name)


def cache_root() -> Path:
    """The cache the hack/cluster scripts use (binaries, kwok work dir): outside the repo."""
    default = Path(os.environ.get("HOME", "/tmp")) / ".cache" / "sentiric-llm"
    return Path(os.environ.get("SENTIRIC_CACHE", str(default)))


def cluster_workdir(name: str) -> Path:
    """kwokctl's directory for cluster `name` (pid files, logs, kubeconfig, certificates)."""
    return cache_root() / "kwok" / "clusters" / name


def owner_state_file(name: str) -> Path:
    """The state file hack/cluster-up.sh writes for a cluster started with an owner pid."""
    return cache_root() / "kwok" / "owners" / f"{name}.state"


def watchdog_pid(name: str) -> int | None:
    """Pid of the watchdog that tears cluster `name` down if its owner dies (from its state)."""
    with contextlib.suppress(OSError, ValueError):
        for line in owner_state_file(name).read_text().splitlines():
            if line.startswith("watchdog_pid="):
                return int(line.partition("=")[2])
    return None


def component_pids(name: str) -> list[int]:
    """Pids kwokctl recorded for cluster `name` (etcd, API server, controllers, kwok)."""
    pids: list[int] = []
    for pid_file in sorted((cluster_workdir(name) / "pids").glob("*.pid")):
        with contextlib.suppress(ValueError, OSError):
            pids.append(int(pid_file.read_text().strip()))
    return pids


def dies_with_this_process(argv: list[str]) -> list[str]:
    """`argv` run so the kernel sends it SIGTERM when the process that started it dies.

    A test's own helper processes (an operator) must not outlive a pytest killed by SIGKILL,
    which runs no teardown; the cluster has its watchdog, these have `setpriv --pdeathsig`
    (util-linux). The signal follows the thread that started them, so call this from the
    test's own thread; a pytest killed in the instant before setpriv has set it is not
    covered. Without setpriv they run unchanged and rely on the teardown alone.
    """
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--", *argv] if setpriv else argv


def run_script(
    argv: list[str], timeout: float, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a hack/ script in its own process group; on timeout the whole group is killed."""
    with subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env=env,
    ) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except BaseException:
            # Also on KeyboardInterrupt or a pytest-timeout: kwokctl and go must not outlive us.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
    return subprocess.CompletedProcess(argv, proc.returncode, stdout, stderr)


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise RuntimeError("script printed nothing on stdout")
    return lines[-1].strip()


def build_binaries() -> Path:
    """Run hack/cluster-build.sh (a no-op when the cache is complete) and return the bin dir."""
    proc = run_script(["bash", str(HACK / "cluster-build.sh")], BUILD_TIMEOUT_S)
    if proc.returncode != 0:
        raise RuntimeError(
            f"hack/cluster-build.sh exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        )
    return Path(_last_line(proc.stdout))


def _is_cluster_item(item: pytest.Item) -> bool:
    return CLUSTER_TESTS in Path(str(item.path)).resolve().parents


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _is_cluster_item(item):
            item.add_marker(pytest.mark.cluster)


def pytest_collection_finish(session: pytest.Session) -> None:
    # The build runs here, outside any test, so a cold build (many minutes) is not cut short by
    # the per-test timeout; a failure is reported by the `cluster` fixture of each test.
    if session.config.option.collectonly or not any(map(_is_cluster_item, session.items)):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    started = time.monotonic()
    if reporter is not None:
        reporter.write_line("cluster: hack/cluster-build.sh (a cold build takes tens of minutes)")
    try:
        session.config.stash[_build_result] = build_binaries()
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        session.config.stash[_build_result] = exc
    if reporter is not None:
        reporter.write_line(f"cluster: build step done in {time.monotonic() - started:.0f}s")


def _stop_pids(pids: list[int], marker: str, grace: float = 0.0) -> None:
    """Backstop after cluster-down: end any recorded process still running (checked by cmdline),
    after letting it exit by itself for `grace` seconds."""
    alive = [pid for pid in pids if _cmdline_has(pid, marker)]
    deadline = time.monotonic() + grace
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [pid for pid in alive if _cmdline_has(pid, marker)]
    for sig, wait_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        for pid in alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait_s
        while alive and time.monotonic() < deadline:
            alive = [pid for pid in alive if _cmdline_has(pid, marker)]
            time.sleep(0.2)
        if not alive:
            return


def _cmdline_has(pid: int, marker: str) -> bool:
    # A pid may be reused once the process exits: only touch one whose command line still names
    # this cluster's work dir.
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return False
    return marker in cmdline


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """The local control plane: started for this session (and torn down), or reused."""
    built = request.config.stash.get(_build_result, None)
    if built is None:
        built = build_binaries()
    if isinstance(built, BaseException):
        raise RuntimeError("building the local cluster failed") from built
    bin_dir = built

    reuse = os.environ.get("SENTIRIC_KUBECONFIG")
    if reuse:
        handle = Cluster(name="external", kubeconfig=Path(reuse), bin_dir=bin_dir)
        try:
            yield handle
        finally:
            shutil.rmtree(handle.helm_home, ignore_errors=True)
        return

    name = f"sentiric-test-{os.getpid()}"
    workdir = cluster_workdir(name)
    handle = Cluster(name=name, kubeconfig=workdir / "kubeconfig.yaml", bin_dir=bin_dir)
    pids: list[int] = []
    watchdog: int | None = None
    # This process owns the cluster: should it die before the teardown below (SIGKILL, the OOM
    # killer), a watchdog started by cluster-up.sh tears the cluster down.
    env = {**os.environ, "SENTIRIC_CLUSTER_OWNER_PID": str(os.getpid())}
    try:
        proc = run_script(["bash", str(HACK / "cluster-up.sh"), name], UP_TIMEOUT_S, env=env)
        pids = component_pids(name)
        watchdog = watchdog_pid(name)
        if proc.returncode != 0:
            raise RuntimeError(
                f"hack/cluster-up.sh {name} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
            )
        handle.kubeconfig = Path(_last_line(proc.stdout))
        yield handle
    finally:
        # Read again: a start that failed half-way may have recorded pids after the first read.
        pids = sorted(set(pids) | set(component_pids(name)))
        watchdog = watchdog or watchdog_pid(name)
        try:
            with contextlib.suppress(subprocess.TimeoutExpired):
                run_script(["bash", str(HACK / "cluster-down.sh"), name], DOWN_TIMEOUT_S)
        finally:
            _stop_pids(pids, str(workdir))
            # The watchdog leaves by itself once cluster-down removed the state file (within
            # its poll interval); this only ends one that did not.
            if watchdog is not None:
                _stop_pids([watchdog], f"watchdog.sh {name}", grace=5.0)
            shutil.rmtree(handle.helm_home, ignore_errors=True)


def _namespace_name(test_name: str) -> str:
    # DNS-1123 label: lower-case alphanumerics and '-', at most 63 characters.
    stem = re.sub(r"[^a-z0-9-]+", "-", test_name.lower()).strip("-")[:40].rstrip("-")
    return f"t-{stem}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, uniquely named namespace for one test; deleted (without waiting) afterwards."""
    name = _namespace_name(request.node.name)
    cluster.kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        cluster.kubectl(
            "delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False
        )
