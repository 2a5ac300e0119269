"""Tools for the hostile-input suite: a tally of outcomes and a watch on the server process.

Every case ends in exactly one outcome: `refused` (a 4xx with OpenAI's error body naming
what was wrong, or a gRPC INVALID_ARGUMENT / RESOURCE_EXHAUSTED / OUT_OF_RANGE with
details), `served` (a valid answer), or a failure: `unclear` (a refusal without a usable
message), `5xx`, `hang` (no answer within the client's deadline) or `crash` (the process
died). The watch polls /health from its own thread the whole time and samples RSS, so a
case that froze the event loop or grew memory fails even though its own reply looked fine.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import grpc
import httpx

from tests.support.server import ServerHandle

REFUSED = "refused"
SERVED = "served"
FAILURES = ("unclear", "5xx", "hang", "crash")
# /health must answer within this, always (the liveness probe's budget is larger).
HEALTH_BUDGET_S = 1.0
GRPC_REFUSALS = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.OUT_OF_RANGE,
    }
)


def rss_bytes(pid: int) -> int:
    """Resident set size of a live process, from /proc."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


@dataclass
class Tally:
    """Counts per outcome over the whole suite, printed at the end of the run."""

    counts: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    worst_health_s: float = 0.0
    rss_start: int = 0
    rss_peak: int = 0

    def add(self, case: str, outcome: str, detail: str = "") -> None:
        self.counts[outcome] += 1
        if outcome in FAILURES:
            self.failures.append(f"{case}: {outcome} {detail}"[:400])

    @property
    def tried(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> str:
        c = self.counts
        return (
            f"hostile input: {self.tried} cases tried, {c[REFUSED]} refused clearly, "
            f"{c[SERVED]} served, {c['unclear']} refused unclearly, {c['5xx']} 5xx, "
            f"{c['hang']} hangs, {c['crash']} crashes; /health worst {self.worst_health_s:.3f} s; "
            f"RSS {self.rss_start / 2**20:.0f} MiB at start, peak {self.rss_peak / 2**20:.0f} MiB"
        )


class Watch:
    """Polls /health (bounded timeout) and RSS on a thread while cases run."""

    def __init__(self, server: ServerHandle, tally: Tally, interval: float = 0.1) -> None:
        self.server = server
        self.tally = tally
        self.interval = interval
        self.worst_s = 0.0
        self.misses = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hostile-watch", daemon=True)

    def __enter__(self) -> Watch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def reset(self) -> None:
        self.worst_s = 0.0
        self.misses = 0

    def _run(self) -> None:
        with httpx.Client(timeout=5.0) as client:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    ok = client.get(f"{self.server.http_url}/health").status_code == 200
                except httpx.HTTPError:
                    ok = False
                elapsed = time.monotonic() - started
                if not ok:
                    self.misses += 1
                self.worst_s = max(self.worst_s, elapsed)
                self.tally.worst_health_s = max(self.tally.worst_health_s, elapsed)
                with contextlib.suppress(OSError, RuntimeError):
                    rss = rss_bytes(self.server.pid)
                    self.tally.rss_peak = max(self.tally.rss_peak, rss)
                self._stop.wait(self.interval)


def http_outcome(response: httpx.Response, field: str | None) -> tuple[str, str]:
    """Classify an HTTP reply; `field` is what a refusal's `param` should start with."""
    status = response.status_code
    if status >= 500:
        return "5xx", f"{status} {response.text[:200]}"
    if status < 400:
        return SERVED, ""
    try:
        error = response.json()["error"]
        if isinstance(error, str):
            # Ollama's shape on /api/*: {"error": "<message>"}, the field named in the text.
            return _ollama_outcome(status, error, field)
        message, param = error["message"], error.get("param")
    except (ValueError, KeyError, TypeError):
        return "unclear", f"{status} body is not OpenAI's error shape: {response.text[:200]}"
    if not message or len(message) > 2000:
        return "unclear", f"{status} message empty or unbounded ({len(message)} chars)"
    # A prompt too long for the context names the prompt ("messages", or its largest part).
    if error.get("code") == "context_length_exceeded":
        field = None if param else field
    if status in (400, 422) and field is not None and not (param or "").startswith(field):
        return "unclear", f"{status} param {param!r} does not name {field!r}: {message[:200]}"
    return REFUSED, ""


def _ollama_outcome(status: int, message: str, field: str | None) -> tuple[str, str]:
    if not message or len(message) > 2000:
        return "unclear", f"{status} message empty or unbounded ({len(message)} chars)"
    if status in (400, 422) and field is not None and field not in message:
        return "unclear", f"{status} message does not name {field!r}: {message[:200]}"
    return REFUSED, ""


def grpc_outcome(exc: grpc.RpcError | None) -> tuple[str, str]:
    if exc is None:
        return SERVED, ""
    code = exc.code()
    details = exc.details() or ""
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return "hang", details
    if code in GRPC_REFUSALS and details and len(details) <= 2000:
        return REFUSED, ""
    if code in GRPC_REFUSALS:
        return "unclear", f"{code.name} details empty or unbounded ({len(details)} chars)"
    return "5xx", f"{code.name} {details[:200]}"


def chat_body(model: str, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 2,
    }
    body.update(fields)
    return body


def dumps(body: Any) -> bytes:
    # allow_nan: NaN / Infinity literals are part of what hostile clients send.
    return json.dumps(body, allow_nan=True).encode()
