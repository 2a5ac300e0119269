"""Why a model download failed, each with the exit code `sentiric-llm download` returns.

    DownloadError                 exit 1  (unexpected)
    ├── AuthError                 exit 3  HTTP 401/403: token missing, wrong or not granted
    ├── NotFoundError             exit 4  HTTP 404: repository, revision or file
    ├── ChecksumMismatchError     exit 5  sha256 differs from the pin or the Hub's LFS hash
    ├── DiskFullError             exit 6  ENOSPC, or the cache volume is smaller than the file
    └── NetworkError              exit 7  timeouts / resets / 5xx still failing after retries
        └── TransientError        (retried; surfaces as NetworkError once retries run out)

Exit code 2 is argparse's: a bad command line or engine.yaml. docs/models.md lists them all.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_UNEXPECTED = 1
EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_NOT_FOUND = 4
EXIT_CHECKSUM = 5
EXIT_DISK_FULL = 6
EXIT_NETWORK = 7


class DownloadError(Exception):
    """A download that cannot complete; `message` is one line meant for `kubectl logs`."""

    exit_code = EXIT_UNEXPECTED

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class AuthError(DownloadError):
    exit_code = EXIT_AUTH


class NotFoundError(DownloadError):
    exit_code = EXIT_NOT_FOUND


class ChecksumMismatchError(DownloadError):
    exit_code = EXIT_CHECKSUM


class DiskFullError(DownloadError):
    exit_code = EXIT_DISK_FULL


class NetworkError(DownloadError):
    exit_code = EXIT_NETWORK


class TransientError(NetworkError):
    """A failure worth retrying (timeout, reset, 5xx, 429); `progressed` if bytes arrived."""

    def __init__(self, message: str, *, progressed: bool = False) -> None:
        super().__init__(message)
        self.progressed = progressed
