"""Headless Chromium from Debian's packages (chromium, chromium-driver), driven by Selenium.

Browsers downloaded from elsewhere do not work here, so the paths are fixed and Selenium
Manager is never asked to fetch one. `headless_chromium()` always ends the driver and every
browser process it started, by pid, even when the test fails or the driver hangs.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# Flags that work in a container without a display, a GPU or a network.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1600,1000",
)
TIMEOUT_S = 30


def missing() -> str | None:
    """Why no browser can start here, or None."""
    absent = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if absent:
        return (
            f"{', '.join(absent)} not found: install Debian's chromium and chromium-driver "
            "(apt-get install -y --no-install-recommends chromium chromium-driver; .ci/run "
            "does this on CI)"
        )
    return None


def _children(pid: int) -> list[int]:
    """Every descendant of `pid`, read from /proc (the browser's renderers, GPU process...)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            # The command name may hold spaces and parentheses: the ppid follows the last ')'.
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            parents.setdefault(ppid, []).append(int(entry.name))
    out: list[int] = []
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _command(pid: int) -> bytes | None:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes()
    except OSError:
        return None


@contextlib.contextmanager
def headless_chromium(workdir: Path) -> Iterator[webdriver.Chrome]:
    """A Chrome driver on a fresh profile in `workdir`, with the browser console logged."""
    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={workdir / 'chromium-profile'}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(
        executable_path=str(CHROMEDRIVER), log_output=str(workdir / "chromedriver.log")
    )
    driver = webdriver.Chrome(service=service, options=options)
    driver_pid = service.process.pid if service.process is not None else None
    try:
        driver.set_page_load_timeout(TIMEOUT_S)
        driver.set_script_timeout(TIMEOUT_S)
        yield driver
    finally:
        # Collected first: once the driver is gone, its browser would be re-parented.
        started = [driver_pid, *_children(driver_pid)] if driver_pid is not None else []
        commands = {pid: _command(pid) for pid in started}
        with contextlib.suppress(Exception):
            driver.quit()
        for pid, command in commands.items():
            # Only a process still running what we started, never a pid reused since.
            if command is not None and _command(pid) == command:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        if service.process is not None:
            with contextlib.suppress(Exception):
                service.process.wait(timeout=TIMEOUT_S)
