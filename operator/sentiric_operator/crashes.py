"""How a container died: the signal that ended it, in words, and a bounded tail of its log.

A process killed by a signal is reported by the container runtime as exit code 128 + the
signal number (139 for SIGSEGV); the API's `signal` field is rarely filled. The kubelet's
`terminationMessagePolicy: FallbackToLogsOnError` leaves the end of the log (at most 2 KiB or
80 lines) as the termination message, which is where a crash's last words are.
"""

from __future__ import annotations

from dataclasses import dataclass

from sentiric_operator.observations import ContainerObservation

# Linux numbering, fixed here rather than read from Python's `signal` module: the container
# always runs on Linux, the operator (in a unit test, on a laptop) may not, and the numbers
# differ between platforms (SIGBUS is 7 on Linux, 10 on macOS).
LINUX_SIGNALS = {
    1: "SIGHUP",
    2: "SIGINT",
    3: "SIGQUIT",
    4: "SIGILL",
    5: "SIGTRAP",
    6: "SIGABRT",
    7: "SIGBUS",
    8: "SIGFPE",
    9: "SIGKILL",
    10: "SIGUSR1",
    11: "SIGSEGV",
    12: "SIGUSR2",
    13: "SIGPIPE",
    14: "SIGALRM",
    15: "SIGTERM",
    24: "SIGXCPU",
    25: "SIGXFSZ",
    31: "SIGSYS",
}
SIGKILL = 9
SIGTERM = 15
_MAX_SIGNAL = 64  # exit codes above 128 + 64 are plain exit statuses, not signals
LOG_TAIL_LINES = 10
LOG_TAIL_CHARS = 600


@dataclass(frozen=True)
class Crash:
    """A container's last end by a signal (or by the kernel's OOM killer)."""

    signal: int | None
    oom_killed: bool
    exit_code: int | None

    @property
    def name(self) -> str:
        if self.oom_killed:
            return "OOMKilled"
        assert self.signal is not None
        return LINUX_SIGNALS.get(self.signal, f"signal {self.signal}")

    @property
    def could_be_a_stop(self) -> bool:
        """SIGTERM and SIGKILL are also how the kubelet stops a container (a failed liveness
        probe, a deletion): on their own they do not prove the engine crashed."""
        return not self.oom_killed and self.signal in (SIGKILL, SIGTERM)

    def describe(self) -> str:
        code = f"exit code {self.exit_code}" if self.exit_code is not None else "no exit code"
        if self.oom_killed:
            return f"OOMKilled ({code}): the kernel killed it for using more than its memory limit"
        return f"killed by {self.name} (signal {self.signal}, {code})"


def crash_of(c: ContainerObservation) -> Crash | None:
    """The signal that ended the container's current or last run, or None for a plain exit."""
    if c.terminated_reason == "OOMKilled":
        return Crash(signal=c.signal or SIGKILL, oom_killed=True, exit_code=c.exit_code)
    signal = c.signal
    if signal is None and c.exit_code is not None and 128 < c.exit_code <= 128 + _MAX_SIGNAL:
        signal = c.exit_code - 128
    if signal is None:
        return None
    return Crash(signal=signal, oom_killed=False, exit_code=c.exit_code)


def log_tail(text: str | None, lines: int = LOG_TAIL_LINES, chars: int = LOG_TAIL_CHARS) -> str:
    """The last `lines` non-blank lines of `text`, cut to its last `chars` characters, joined
    with " | " so they read on one line of `kubectl describe`."""
    kept = [line.strip() for line in (text or "").splitlines() if line.strip()][-lines:]
    joined = " | ".join(kept)
    return joined if len(joined) <= chars else "..." + joined[-chars:]
