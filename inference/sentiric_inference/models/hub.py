"""The Hugging Face Hub side of a download: file metadata (HEAD) and ranged reads (GET).

Both go through `huggingface_hub` (its HTTP session, headers, `HF_ENDPOINT` handling and
error mapping); this module only turns its exceptions into `models.errors` with a message
an operator can act on.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx2
from huggingface_hub import get_hf_file_metadata, get_session, hf_hub_url, hf_raise_for_status
from huggingface_hub.errors import (
    FileMetadataError,
    HfHubHTTPError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

# Public, but re-exported through a lazily computed __all__ that type checkers cannot see.
from huggingface_hub.utils import build_hf_headers  # type: ignore[attr-defined]

from sentiric_inference import __version__
from sentiric_inference.models.errors import (
    AuthError,
    DownloadError,
    NotFoundError,
    TransientError,
)

# Sent in the User-Agent, so Hub operators can tell these downloads apart.
_LIBRARY_NAME = "sentiric-llm"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class HubFile:
    """One file of a Hub repository at a revision (branch, tag or commit)."""

    repo: str
    file: str
    revision: str = "main"

    def __str__(self) -> str:
        return f"{self.repo}/{self.file}@{self.revision}"


@dataclass(frozen=True)
class RemoteFile:
    """What the Hub says about a file: where its bytes are, its size and its LFS sha256."""

    url: str
    location: str
    commit: str | None
    etag: str
    size: int | None
    # The Hub's ETag for an LFS file is the sha256 of its content; None for plain git files.
    sha256: str | None


def _token(token: str | None) -> str | bool:
    # False, not None: None would make huggingface_hub pick up a token saved on this machine.
    return token if token else False


def describe_failure(
    exc: BaseException, source: HubFile, *, progressed: bool = False
) -> DownloadError:
    """Map a huggingface_hub / httpx2 exception to a DownloadError with a one-line message."""
    if isinstance(exc, DownloadError):
        return exc
    if isinstance(exc, HfHubHTTPError) and exc.response is not None:
        status = exc.response.status_code
        if status in (401, 403):
            detail = exc.response.headers.get("X-Error-Message") or (
                "token missing or invalid" if status == 401 else "token not granted access"
            )
            return AuthError(
                f"HTTP {status} from the Hub for {source}: {detail}; set a valid token in the "
                "Secret named by spec.model.huggingFace.tokenSecretRef (HF_TOKEN), and for a "
                "gated repository accept its terms on the Hub with that account"
            )
        if status == 404:
            if isinstance(exc, RevisionNotFoundError):
                return NotFoundError(f"revision '{source.revision}' not found in {source.repo}")
            if isinstance(exc, RemoteEntryNotFoundError):
                return NotFoundError(
                    f"file '{source.file}' not found in {source.repo} at {source.revision}"
                )
            if isinstance(exc, RepositoryNotFoundError):
                return NotFoundError(
                    f"repository '{source.repo}' not found (a private repository also needs "
                    "tokenSecretRef)"
                )
            return NotFoundError(f"HTTP 404 for {source}")
        if status in _RETRYABLE_STATUS:
            return TransientError(f"HTTP {status} from the Hub for {source}", progressed=progressed)
        return DownloadError(f"HTTP {status} from the Hub for {source}")
    if isinstance(exc, httpx2.TransportError):
        return TransientError(
            f"{type(exc).__name__} talking to the Hub for {source}: {exc or 'no detail'}",
            progressed=progressed,
        )
    if isinstance(exc, FileMetadataError):
        return DownloadError(
            f"the endpoint does not answer like the Hub for {source} ({exc}); check HF_ENDPOINT"
        )
    return DownloadError(f"{type(exc).__name__} while downloading {source}: {exc}")


def fetch_metadata(
    source: HubFile, *, token: str | None, timeout: float, endpoint: str | None = None
) -> RemoteFile:
    """HEAD the file's resolve URL (no retries here: the caller's policy owns them)."""
    url = hf_hub_url(source.repo, source.file, revision=source.revision, endpoint=endpoint)
    try:
        meta = get_hf_file_metadata(
            url,
            token=_token(token),
            timeout=timeout,
            endpoint=endpoint,
            library_name=_LIBRARY_NAME,
            library_version=__version__,
        )
    except Exception as exc:
        raise describe_failure(exc, source) from exc
    if meta.etag is None or meta.commit_hash is None:
        raise DownloadError(
            f"the endpoint answered for {source} without X-Repo-Commit/ETag headers, so it is "
            "not a Hub endpoint; check HF_ENDPOINT"
        )
    etag = meta.etag.lower()
    return RemoteFile(
        url=url,
        location=meta.location,
        commit=meta.commit_hash,
        etag=etag,
        size=meta.size,
        sha256=etag if _SHA256.fullmatch(etag) else None,
    )


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port


@contextmanager
def open_stream(
    remote: RemoteFile, source: HubFile, *, offset: int, token: str | None, timeout: float
) -> Iterator[httpx2.Response]:
    """GET the file's bytes from `offset` on; the response may be 200 if Range was ignored."""
    headers = build_hf_headers(
        token=_token(token), library_name=_LIBRARY_NAME, library_version=__version__
    )
    if _origin(remote.location) != _origin(remote.url):
        # A signed CDN URL: the Hub token must not leave the Hub.
        headers.pop("authorization", None)
    headers["Accept-Encoding"] = "identity"
    if offset > 0:
        headers["Range"] = f"bytes={offset}-"
    # Errors (HTTP status via hf_raise_for_status, or httpx2 transport errors, also while the
    # caller iterates the body) propagate; the caller maps them with `describe_failure`.
    with get_session().stream(
        "GET", remote.location, headers=headers, timeout=timeout, follow_redirects=True
    ) as response:
        if response.status_code >= 400:
            response.read()
            hf_raise_for_status(response)
        yield response
