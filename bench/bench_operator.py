"""Operator latency and scale on the local cluster (kwok), printed as figures and ratios.

  1. One LLMProfile -> its Deployment exists (p50/p90 of N): through `kubectl apply` (includes
     kubectl's own start-up), and through the API client, side by side with creating a bare
     ConfigMap through the API client (one API round trip, the floor).
  2. N profiles created at once -> every Deployment exists, and every status is written;
     wall time and the operator process's memory (RSS, peak) before and after.

Usage: python bench/bench_operator.py [--single 20] [--burst 100]
Uses $SENTIRIC_KUBECONFIG when set, else starts (and stops) its own cluster with
hack/cluster-up.sh. Run from the repository root with the project's venv.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import functools
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import yaml
from kubernetes import client, config

ROOT = Path(__file__).resolve().parents[1]
CRD = ROOT / "crds" / "llmprofiles.llm.sentiric.ai.yaml"
GROUP, VERSION, PLURAL = "llm.sentiric.ai", "v1alpha1", "llmprofiles"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _last_line(text: str) -> str:
    return [line for line in text.splitlines() if line.strip()][-1].strip()


@contextlib.contextmanager
def local_cluster() -> Iterator[tuple[Path, Path]]:
    """(kubeconfig, bin dir): the given cluster, or one started here and stopped afterwards."""
    bin_dir = Path(
        _last_line(
            subprocess.run(
                ["bash", str(ROOT / "hack" / "cluster-build.sh")],
                capture_output=True,
                text=True,
                check=True,
                timeout=5400,
            ).stdout
        )
    )
    given = os.environ.get("SENTIRIC_KUBECONFIG")
    if given:
        yield Path(given), bin_dir
        return
    name = f"sentiric-bench-{os.getpid()}"
    try:
        up = subprocess.run(
            ["bash", str(ROOT / "hack" / "cluster-up.sh"), name],
            capture_output=True,
            text=True,
            check=True,
            timeout=300,
        )
        yield Path(_last_line(up.stdout)), bin_dir
    finally:
        subprocess.run(
            ["bash", str(ROOT / "hack" / "cluster-down.sh"), name],
            capture_output=True,
            check=False,
            timeout=120,
        )


def _kubectl(bin_dir: Path, kubeconfig: Path, *args: str, stdin: str | None = None) -> str:
    proc = subprocess.run(
        [str(bin_dir / "kubectl"), "--kubeconfig", str(kubeconfig), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {proc.stderr}")
    return proc.stdout


def _profile(name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "LLMProfile",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "model": {
                "huggingFace": {
                    "repo": "Qwen/Qwen2.5-0.5B-Instruct-GGUF",
                    "file": "qwen2.5-0.5b-instruct-q4_k_m.gguf",
                },
                "cache": {"size": "1Gi", "storageClassName": "bench-none"},
            },
            "engine": {"gpuLayers": 0},
        },
    }


def _wait(predicate: Callable[[], bool], timeout: float, what: str, interval: float) -> float:
    """Seconds until `predicate` holds (polled every `interval`), or raise after `timeout`."""
    start = time.perf_counter()
    while not predicate():
        if time.perf_counter() - start > timeout:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(interval)
    return time.perf_counter() - start


def _exists(read: Callable[[], object]) -> bool:
    try:
        read()
    except client.ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def _deployment_exists(apps: client.AppsV1Api, ns: str, name: str) -> Callable[[], bool]:
    return lambda: _exists(lambda: apps.read_namespaced_deployment(name, ns))


def _memory(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) in bytes."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024


def _pcts(values: list[float]) -> str:
    q = statistics.quantiles(values, n=10)
    return f"p50 {statistics.median(values) * 1000:7.1f} ms   p90 {q[8] * 1000:7.1f} ms"


def run(single: int, burst: int) -> None:
    with local_cluster() as (kubeconfig, bin_dir):
        _kubectl(bin_dir, kubeconfig, "apply", "--server-side", "--force-conflicts", "-f", str(CRD))
        # Polled: `kubectl wait` fails outright while a brand-new CRD has no conditions yet.
        jsonpath = '{.status.conditions[?(@.type=="Established")].status}'
        _wait(
            lambda: (
                _kubectl(
                    bin_dir,
                    kubeconfig,
                    "get",
                    "crd",
                    "llmprofiles.llm.sentiric.ai",
                    "-o",
                    f"jsonpath={jsonpath}",
                ).strip()
                == "True"
            ),
            60,
            "the CRD to be Established",
            0.5,
        )
        ns = f"bench-operator-{os.getpid()}"
        _kubectl(bin_dir, kubeconfig, "create", "namespace", ns)
        metrics_port, health_port = _free_port(), _free_port()
        env = dict(
            os.environ,
            KUBECONFIG=str(kubeconfig),
            SENTIRIC_WATCH_NAMESPACES=ns,
            SENTIRIC_METRICS_PORT=str(metrics_port),
            SENTIRIC_LIVENESS_ENDPOINT=f"http://127.0.0.1:{health_port}/healthz",
        )
        log_path = Path(tempfile.gettempdir()) / f"bench_operator-{os.getpid()}.log"
        print(f"operator log: {log_path}")
        log = log_path.open("wb")
        op = subprocess.Popen(
            [str(Path(sys.executable).parent / "sentiric-operator")],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        api: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(kubeconfig)
        )
        apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
        custom = client.CustomObjectsApi(api)
        try:
            _wait(lambda: _healthy(health_port), 60, "the operator's liveness", 0.2)
            rss0, _ = _memory(op.pid)

            kubectl_s, api_s, baseline_s = [], [], []
            for i in range(single):
                t0 = time.perf_counter()
                _kubectl(
                    bin_dir,
                    kubeconfig,
                    "apply",
                    "-f",
                    "-",
                    stdin=yaml.safe_dump(_profile(f"kubectl-{i}", ns)),
                )
                _wait(_deployment_exists(apps, ns, f"kubectl-{i}"), 60, "the Deployment", 0.01)
                kubectl_s.append(time.perf_counter() - t0)

                cm = client.V1ConfigMap(
                    metadata=client.V1ObjectMeta(name=f"base-{i}"), data={"k": "v"}
                )
                t0 = time.perf_counter()
                core.create_namespaced_config_map(ns, cm)
                _wait(
                    functools.partial(
                        _exists,
                        functools.partial(core.read_namespaced_config_map, f"base-{i}", ns),
                    ),
                    60,
                    "the ConfigMap",
                    0.01,
                )
                baseline_s.append(time.perf_counter() - t0)

                t0 = time.perf_counter()
                custom.create_namespaced_custom_object(
                    GROUP, VERSION, ns, PLURAL, _profile(f"api-{i}", ns)
                )
                _wait(_deployment_exists(apps, ns, f"api-{i}"), 60, "the Deployment", 0.01)
                api_s.append(time.perf_counter() - t0)
            print(f"single profiles (n={single} each), until the object exists:")
            print(f"  kubectl apply LLMProfile -> Deployment   {_pcts(kubectl_s)}")
            print(f"  API create LLMProfile -> Deployment      {_pcts(api_s)}")
            print(
                f"  API create ConfigMap -> ConfigMap        {_pcts(baseline_s)}  (one round trip)"
            )
            print(
                "  operator share, ratio of medians (API LLMProfile/ConfigMap) "
                f"{statistics.median(api_s) / statistics.median(baseline_s):7.1f}x"
            )

            rss1, _ = _memory(op.pid)
            t0 = time.perf_counter()
            # "At once": every create in flight together, as a GitOps sync of many files would be.
            with concurrent.futures.ThreadPoolExecutor(max_workers=10) as pool:
                list(
                    pool.map(
                        lambda i: custom.create_namespaced_custom_object(
                            GROUP, VERSION, ns, PLURAL, _profile(f"burst-{i}", ns)
                        ),
                        range(burst),
                    )
                )
            applied = time.perf_counter() - t0

            def deployments() -> int:
                items = apps.list_namespaced_deployment(ns).items
                names = [d.metadata.name if d.metadata else None for d in items]
                return sum(1 for name in names if name and name.startswith("burst-"))

            def statuses() -> int:
                listing = cast(
                    "dict[str, Any]",
                    custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL),
                )
                items = listing["items"]
                return sum(
                    1
                    for p in items
                    if p["metadata"]["name"].startswith("burst-")
                    and (p.get("status") or {}).get("observedGeneration")
                )

            _wait(lambda: deployments() == burst, 600, "all Deployments", 0.25)
            deps_total = time.perf_counter() - t0
            _wait(lambda: statuses() == burst, 600, "all statuses", 0.25)
            status_total = time.perf_counter() - t0
            rss2, hwm = _memory(op.pid)
            print(f"burst of {burst} profiles created at once (10 concurrent API clients):")
            print(f"  all {burst} creates returned     {applied:7.2f} s")
            print(
                f"  all {burst} Deployments exist    {deps_total:7.2f} s  "
                f"({burst / deps_total:.1f} profiles/s)"
            )
            print(f"  all {burst} statuses written     {status_total:7.2f} s")
            print(
                f"operator memory: RSS idle {rss0 / 2**20:.1f} MiB, after the singles "
                f"{rss1 / 2**20:.1f} MiB, after the burst {rss2 / 2**20:.1f} MiB "
                f"(peak {hwm / 2**20:.1f} MiB)"
            )
            print(
                f"machine load average (1 min) at the end: {os.getloadavg()[0]:.1f} "
                f"on {os.cpu_count()} CPUs"
            )
            print(_reconcile_summary(metrics_port))
        finally:
            # While the operator still runs: it removes kopf's finalizer from each profile.
            subprocess.run(
                [
                    str(bin_dir / "kubectl"),
                    "--kubeconfig",
                    str(kubeconfig),
                    "-n",
                    ns,
                    "delete",
                    "llmp",
                    "--all",
                    "--wait=true",
                    "--timeout=300s",
                ],
                capture_output=True,
                check=False,
                timeout=330,
            )
            op.send_signal(signal.SIGTERM)
            try:
                op.wait(timeout=20)
            except subprocess.TimeoutExpired:
                op.kill()
                op.wait(timeout=10)
            log.close()
            api.close()  # type: ignore[no-untyped-call]
            subprocess.run(
                [
                    str(bin_dir / "kubectl"),
                    "--kubeconfig",
                    str(kubeconfig),
                    "delete",
                    "namespace",
                    ns,
                    "--wait=false",
                ],
                capture_output=True,
                check=False,
                timeout=60,
            )


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _reconcile_summary(port: int) -> str:
    lines = [
        line
        for line in httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text.splitlines()
        if line.startswith("sentiric_operator_reconciles_total{")
    ]
    return "operator reconciles: " + "; ".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--single", type=int, default=20, help="profiles applied one by one")
    parser.add_argument("--burst", type=int, default=100, help="profiles applied at once")
    args = parser.parse_args()
    run(args.single, args.burst)
    return 0


if __name__ == "__main__":
    sys.exit(main())
