"""crashes: which terminations are deaths by signal, their names, and the bounded log tail."""

from __future__ import annotations

from typing import Any

import pytest
from operator_samples import container
from sentiric_operator.crashes import crash_of, log_tail


@pytest.mark.parametrize(
    ("ended", "expected"),
    [
        ({"exit_code": 139}, ("SIGSEGV", False)),
        ({"exit_code": 134}, ("SIGABRT", False)),
        ({"exit_code": 132}, ("SIGILL", False)),
        ({"exit_code": 136}, ("SIGFPE", False)),
        ({"exit_code": 137}, ("SIGKILL", True)),
        ({"exit_code": 143}, ("SIGTERM", True)),
        ({"exit_code": 137, "terminated_reason": "OOMKilled"}, ("OOMKilled", False)),
        # A runtime may report OOMKilled with no exit code at all.
        ({"terminated_reason": "OOMKilled"}, ("OOMKilled", False)),
        ({"exit_code": 0, "signal": 11}, ("SIGSEGV", False)),
        ({"exit_code": 128 + 40}, ("signal 40", False)),
    ],
)
def test_deaths_by_signal(ended: dict[str, Any], expected: tuple[str, bool]) -> None:
    crash = crash_of(container("inference", **ended))
    assert crash is not None
    assert (crash.name, crash.could_be_a_stop) == expected


@pytest.mark.parametrize("exit_code", [None, 0, 1, 2, 127, 128, 128 + 65, 255])
def test_plain_exits_are_not_crashes(exit_code: int | None) -> None:
    assert crash_of(container("inference", exit_code=exit_code, terminated_reason="Error")) is None


def test_describe() -> None:
    segv = crash_of(container("inference", exit_code=139))
    oom = crash_of(container("inference", exit_code=137, terminated_reason="OOMKilled"))
    assert segv is not None and oom is not None
    assert segv.describe() == "killed by SIGSEGV (signal 11, exit code 139)"
    assert oom.describe().startswith("OOMKilled (exit code 137): the kernel killed it")


def test_log_tail_keeps_the_last_lines_within_the_bound() -> None:
    assert log_tail(None) == ""
    assert log_tail("\n\n  \n") == ""
    assert log_tail("a\n\nb\n  c  \n") == "a | b | c"
    assert log_tail("\n".join(str(i) for i in range(20)), lines=3) == "17 | 18 | 19"
    tail = log_tail("x" * 1000 + "\nlast", chars=50)
    assert tail.startswith("...") and tail.endswith(" | last") and len(tail) == 53
