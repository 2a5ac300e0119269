"""Download one GGUF from the Hugging Face Hub into the model cache, verified and in place.

Order of work: trust a verified-marker if the file is unchanged (no network); otherwise ask
the Hub for the file's metadata, refuse early if its LFS hash contradicts the sha256 pin,
check free space, transfer (resuming a partial file, retrying with exponential backoff),
hash, and only then rename into `<cacheDir>/<file>` atomically and write the marker.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from filelock import FileLock, Timeout
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    wait_exponential,
    wait_random,
)

from sentiric_inference.models.errors import (
    ChecksumMismatchError,
    DiskFullError,
    DownloadError,
    NetworkError,
    TransientError,
)
from sentiric_inference.models.hub import HubFile, RemoteFile, fetch_metadata
from sentiric_inference.models.markers import (
    read_marker,
    sha256_file,
    still_valid,
    write_marker,
)
from sentiric_inference.models.progress import ProgressLog, human_bytes
from sentiric_inference.models.transfer import fetch_into

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class DownloadOptions:
    """How hard to try: per-request timeout, retries and backoff, progress log interval."""

    # Seconds to connect, and seconds without a single byte before a read counts as stalled.
    timeout: float = 30.0
    # Consecutive failed attempts without new bytes before giving up (progress resets it).
    attempts: int = 6
    backoff_initial: float = 1.0
    backoff_max: float = 60.0
    progress_interval: float = 10.0
    # Seconds to wait for another process (a second replica on a shared volume) to finish.
    lock_timeout: float = 6 * 3600.0
    endpoint: str | None = None


@dataclass(frozen=True)
class DownloadResult:
    path: Path
    sha256: str
    size: int
    # False when an already verified file was kept.
    downloaded: bool


def partial_path(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}.partial")


def _partial_etag_path(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}.partial.etag")


class _StopWithoutProgress:
    """tenacity stop: give up after `limit` consecutive attempts that received no bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.barren = 0

    def __call__(self, state: RetryCallState) -> bool:
        exc = state.outcome.exception() if state.outcome is not None else None
        progressed = isinstance(exc, TransientError) and exc.progressed
        self.barren = 0 if progressed else self.barren + 1
        return self.barren >= self.limit


def _with_retries(options: DownloadOptions, what: str, call: Callable[[], T]) -> T:
    stop = _StopWithoutProgress(options.attempts)

    def log_retry(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        logger.warning(
            "%s failed (attempt %d): %s; retrying in %.1fs", what, state.attempt_number, exc, wait
        )

    retrying = Retrying(
        stop=stop,
        wait=wait_exponential(multiplier=options.backoff_initial, max=options.backoff_max)
        + wait_random(0, options.backoff_initial / 2),
        retry=retry_if_exception_type(TransientError),
        before_sleep=log_retry,
        reraise=True,
    )
    try:
        return retrying(call)
    except TransientError as exc:
        raise NetworkError(
            f"{what}: still failing after {stop.barren} attempts without progress: {exc.message}"
        ) from exc


def _verified_marker_hit(dest: Path, source: HubFile, pin: str | None) -> DownloadResult | None:
    marker = read_marker(dest)
    if marker is None or not still_valid(marker, dest):
        return None
    if pin is not None and marker.sha256 != pin:
        return None
    if pin is None and (marker.repo, marker.revision, marker.file) != (
        source.repo,
        source.revision,
        source.file,
    ):
        return None
    return DownloadResult(path=dest, sha256=marker.sha256, size=marker.size, downloaded=False)


def _check_pin(source: HubFile, remote: RemoteFile, pin: str | None) -> str | None:
    if pin is not None and remote.sha256 is not None and remote.sha256 != pin:
        raise ChecksumMismatchError(
            f"sha256 pin {pin} does not match the Hub's sha256 {remote.sha256} for {source} "
            "(wrong pin, or the file changed at that revision); nothing was downloaded"
        )
    return pin or remote.sha256


def _check_space(dest: Path, remote: RemoteFile, have: int) -> None:
    if remote.size is None:
        return
    needed = remote.size - have
    free = shutil.disk_usage(dest.parent).free
    if needed > free:
        raise DiskFullError(
            f"the cache volume has {human_bytes(free)} free but {dest.name} needs "
            f"{human_bytes(needed)} more: raise spec.model.cache.size"
        )


def _prepare_partial(dest: Path, remote: RemoteFile) -> int:
    """Keep a partial file only if it belongs to the same remote version (same ETag)."""
    partial, etag_file = partial_path(dest), _partial_etag_path(dest)
    if partial.exists():
        try:
            same = etag_file.read_text().strip() == remote.etag
        except OSError:
            same = False
        if not same:
            logger.info("discarding a partial download of another version of %s", dest.name)
            partial.unlink()
    etag_file.write_text(remote.etag)
    return partial.stat().st_size if partial.exists() else 0


def _finish(dest: Path, source: HubFile, expected: str | None) -> DownloadResult:
    partial = partial_path(dest)
    actual = sha256_file(partial)
    if expected is not None and actual != expected:
        partial.unlink()
        _partial_etag_path(dest).unlink(missing_ok=True)
        raise ChecksumMismatchError(
            f"sha256 of the downloaded {source} is {actual}, expected {expected}; the bad file "
            "was deleted"
        )
    if expected is None:
        logger.warning("no sha256 to verify %s against (plain git file and no pin)", source)
    os.replace(partial, dest)
    _partial_etag_path(dest).unlink(missing_ok=True)
    _fsync_dir(dest.parent)
    marker = write_marker(
        dest, sha256=actual, repo=source.repo, revision=source.revision, file=source.file
    )
    return DownloadResult(path=dest, sha256=actual, size=marker.size, downloaded=True)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _download_locked(
    source: HubFile, dest: Path, pin: str | None, token: str | None, options: DownloadOptions
) -> DownloadResult:
    hit = _verified_marker_hit(dest, source, pin)
    if hit is not None:
        logger.info("%s already present and verified (sha256 %s); skipping", dest, hit.sha256)
        return hit
    remote = _with_retries(
        options,
        f"metadata of {source}",
        lambda: fetch_metadata(
            source, token=token, timeout=options.timeout, endpoint=options.endpoint
        ),
    )
    expected = _check_pin(source, remote, pin)
    if dest.is_file() and expected is not None and sha256_file(dest) == expected:
        # Present but never marked (copied in by hand, or a marker lost): verify once, keep it.
        marker = write_marker(
            dest, sha256=expected, repo=source.repo, revision=source.revision, file=source.file
        )
        logger.info("%s already present; verified sha256 %s", dest, expected)
        return DownloadResult(path=dest, sha256=expected, size=marker.size, downloaded=False)
    have = _prepare_partial(dest, remote)
    _check_space(dest, remote, have)
    size = human_bytes(remote.size) if remote.size is not None else "unknown size"
    logger.info("downloading %s (%s, commit %s) to %s", source, size, remote.commit, dest)
    progress = ProgressLog(
        logger,
        label=source.file,
        total=remote.size,
        initial=have,
        interval=options.progress_interval,
    )
    _with_retries(
        options,
        f"download of {source}",
        lambda: fetch_into(
            partial_path(dest),
            remote,
            source,
            token=token,
            timeout=options.timeout,
            progress=progress,
        ),
    )
    logger.info("%s: transfer complete, %s; verifying sha256", source.file, progress.summary())
    return _finish(dest, source, expected)


def download_model(
    source: HubFile,
    cache_dir: Path,
    *,
    sha256: str | None = None,
    token: str | None = None,
    options: DownloadOptions | None = None,
) -> DownloadResult:
    """Make `<cache_dir>/<source.file>` the verified Hub file; raises a DownloadError subclass."""
    options = options or DownloadOptions()
    pin = sha256.lower() if sha256 else None
    dest = cache_dir / source.file
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(dest.with_name(f".{dest.name}.lock")), timeout=options.lock_timeout)
        with lock:
            return _download_locked(source, dest, pin, token, options)
    except Timeout as exc:
        raise DownloadError(
            f"another process kept {dest} locked for {options.lock_timeout}s"
        ) from exc
    except OSError as exc:
        if exc.errno == errno.ENOSPC:  # outside the transfer (partial bookkeeping, marker)
            raise DiskFullError(f"no space left on the cache volume at {dest.parent}") from exc
        raise DownloadError(f"cannot write the model cache at {dest.parent}: {exc}") from exc
