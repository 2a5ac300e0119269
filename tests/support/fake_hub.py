"""A local HTTP server that answers like the Hugging Face Hub's download endpoints, for tests.

No hub is reachable here, so `sentiric-llm download` is tested against this server through
`HF_ENDPOINT`. It serves what huggingface_hub's download path asks for:

- `HEAD|GET /{repo}/resolve/{revision}/{file}` with `X-Repo-Commit`, `ETag`; LFS files answer
  302 to a second server on another port (the "CDN", as the real Hub redirects to one) with
  `X-Linked-Etag` (the sha256) and `X-Linked-Size`; plain git files answer 200 themselves;
- `GET /blobs/{sha256}` on the CDN with `Range` / 206 support;
- 401 / 403 / 404 with the `X-Error-Code` / `X-Error-Message` headers huggingface_hub maps;
- fault switches: cut the connection mid-file, stall, serve wrong bytes.

It uses the standard library's threaded HTTP server; `stop()` ends stalls and both servers.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import re
import socket
import threading
from dataclasses import dataclass, field
from typing import Any, Self

_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<revision>[^/]+)/(?P<file>.+)$")
_BLOB = re.compile(r"^/blobs/(?P<sha>[0-9a-f]{64})$")
_RANGE = re.compile(r"^bytes=(?P<start>\d+)-(?P<end>\d*)$")


@dataclass
class Faults:
    """What goes wrong on the next content GETs (counted across all files)."""

    # The first `cut_times` GETs send the headers and `cut_after` bytes, then drop the connection.
    cut_times: int = 0
    cut_after: int = 0
    # The first `stall_times` GETs send `stall_after` bytes, then go silent for `stall_seconds`.
    stall_times: int = 0
    stall_after: int = 0
    stall_seconds: float = 30.0
    # Serve content with every byte flipped (same length), while advertising the right hash.
    corrupt: bool = False
    # Answer GETs with this status (e.g. 503) the first `status_times` times.
    status: int = 0
    status_times: int = 0
    # Leave the size out of HEAD answers (no X-Linked-Size / Content-Length), as some mirrors do.
    hide_size: bool = False


@dataclass
class HubFile:
    content: bytes
    lfs: bool = True

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    @property
    def git_sha1(self) -> str:
        # Git's blob id, the ETag the Hub sends for files stored in plain git.
        header = f"blob {len(self.content)}\0".encode()
        return hashlib.sha1(header + self.content).hexdigest()


@dataclass
class Repo:
    commit: str
    # revision name (branch, tag or the commit itself) -> file name -> file
    files: dict[str, HubFile] = field(default_factory=dict)
    revisions: set[str] = field(default_factory=set)
    private: bool = False
    # Tokens that authenticate but are not granted this (gated) repository: 403.
    forbidden_tokens: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Request:
    """One request the fake hub received, for assertions."""

    server: str
    method: str
    path: str
    range: str | None
    authorization: str | None


class FakeHub:
    """Two threaded HTTP servers on 127.0.0.1: the Hub (`url`) and its CDN."""

    def __init__(self, *, valid_tokens: set[str] | None = None) -> None:
        self.repos: dict[str, Repo] = {}
        self.valid_tokens = valid_tokens or set()
        self.faults = Faults()
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._hub = _Server(self, "hub")
        self._cdn = _Server(self, "cdn")
        self._threads: list[threading.Thread] = []

    # -- content -------------------------------------------------------------------------
    def add_file(
        self,
        repo: str,
        name: str,
        content: bytes,
        *,
        lfs: bool = True,
        revision: str = "main",
        private: bool = False,
    ) -> HubFile:
        commit = hashlib.sha1(repo.encode()).hexdigest()
        entry = self.repos.setdefault(repo, Repo(commit=commit, private=private))
        entry.private = entry.private or private
        entry.revisions.update({revision, commit})
        hub_file = HubFile(content=content, lfs=lfs)
        entry.files[name] = hub_file
        return hub_file

    # -- lifecycle -----------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._hub.server_address[1]}"

    @property
    def cdn_url(self) -> str:
        return f"http://127.0.0.1:{self._cdn.server_address[1]}"

    def start(self) -> Self:
        for server in (self._hub, self._cdn):
            thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stopping.set()
        for server in (self._hub, self._cdn):
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # -- helpers for the handler ---------------------------------------------------------
    def record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    def take_fault(self) -> str | None:
        """Consume one pending content fault, in order: status, cut, stall."""
        with self._lock:
            f = self.faults
            if f.status_times > 0:
                f.status_times -= 1
                return "status"
            if f.cut_times > 0:
                f.cut_times -= 1
                return "cut"
            if f.stall_times > 0:
                f.stall_times -= 1
                return "stall"
            return None

    def wait_stall(self, seconds: float) -> None:
        self._stopping.wait(seconds)

    def content_gets(self) -> list[Request]:
        return [r for r in self.requests if r.method == "GET"]

    def find_blob(self, sha: str) -> HubFile | None:
        for repo in self.repos.values():
            for hub_file in repo.files.values():
                if hub_file.sha256 == sha:
                    return hub_file
        return None


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, hub: FakeHub, role: str) -> None:
        self.hub = hub
        self.role = role
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        # Requests are recorded in FakeHub.requests; keep pytest output clean.
        return

    def do_HEAD(self) -> None:
        self._dispatch(head=True)

    def do_GET(self) -> None:
        self._dispatch(head=False)

    # -- routing -------------------------------------------------------------------------
    def _dispatch(self, *, head: bool) -> None:
        hub = self.server.hub
        hub.record(
            Request(
                server=self.server.role,
                method=self.command,
                path=self.path,
                range=self.headers.get("Range"),
                authorization=self.headers.get("Authorization"),
            )
        )
        if self.server.role == "cdn":
            match = _BLOB.match(self.path)
            blob = hub.find_blob(match["sha"]) if match else None
            if blob is None:
                self._error(404, "EntryNotFound", "Blob not found")
                return
            self._content(blob, head=head, commit=None)
            return
        match = _RESOLVE.match(self.path)
        if match is None:
            self._error(404, None, "Not found")
            return
        self._resolve(match["repo"], match["revision"], match["file"], head=head)

    def _resolve(self, repo_id: str, revision: str, name: str, *, head: bool) -> None:
        hub = self.server.hub
        repo = hub.repos.get(repo_id)
        token = _bearer(self.headers.get("Authorization"))
        if token is not None and hub.valid_tokens and token not in hub.valid_tokens:
            self._error(401, None, "Invalid credentials in Authorization header")
            return
        if repo is None or (repo.private and token is None):
            # The Hub does not reveal whether a private repo exists to anonymous callers.
            status = 401 if repo is not None else 404
            self._error(status, "RepoNotFound", "Repository not found")
            return
        if token is not None and token in repo.forbidden_tokens:
            self._error(403, "GatedRepo", "Access to this gated repository is restricted")
            return
        if revision not in repo.revisions:
            self._error(404, "RevisionNotFound", "Invalid rev id: " + revision)
            return
        hub_file = repo.files.get(name)
        if hub_file is None:
            self._error(404, "EntryNotFound", f"{name} does not exist", commit=repo.commit)
            return
        if hub_file.lfs:
            self.send_response(302)
            self.send_header("Location", f"{hub.cdn_url}/blobs/{hub_file.sha256}")
            self.send_header("X-Repo-Commit", repo.commit)
            self.send_header("ETag", f'"{hub_file.git_sha1}"')
            self.send_header("X-Linked-Etag", f'"{hub_file.sha256}"')
            if not hub.faults.hide_size:
                self.send_header("X-Linked-Size", str(len(hub_file.content)))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self._content(hub_file, head=head, commit=repo.commit)

    # -- responses -----------------------------------------------------------------------
    def _error(
        self, status: int, code: str | None, message: str, *, commit: str | None = None
    ) -> None:
        body = f'{{"error": "{message}"}}'.encode()
        self.send_response(status)
        if code is not None:
            self.send_header("X-Error-Code", code)
        self.send_header("X-Error-Message", message)
        if commit is not None:
            self.send_header("X-Repo-Commit", commit)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _content(self, hub_file: HubFile, *, head: bool, commit: str | None) -> None:
        hub = self.server.hub
        content = hub_file.content
        if hub.faults.corrupt:
            content = bytes(b ^ 0xFF for b in content)
        fault = None if head else hub.take_fault()
        if fault == "status":
            self._error(hub.faults.status, None, "Service unavailable")
            return
        start = 0
        requested = self.headers.get("Range")
        match = _RANGE.match(requested) if requested else None
        if match is not None:
            start = int(match["start"])
            if start >= len(content):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(content)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
        body = content[start:]
        self.send_response(206 if match is not None else 200)
        if match is not None:
            self.send_header("Content-Range", f"bytes {start}-{len(content) - 1}/{len(content)}")
        if commit is not None:
            self.send_header("X-Repo-Commit", commit)
            self.send_header("ETag", f'"{hub_file.git_sha1}"')
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "application/octet-stream")
        if not (head and hub.faults.hide_size):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if head:
            return
        if fault == "cut":
            self.wfile.write(body[: hub.faults.cut_after])
            self.wfile.flush()
            self._drop_connection()
            return
        if fault == "stall":
            self.wfile.write(body[: hub.faults.stall_after])
            self.wfile.flush()
            hub.wait_stall(hub.faults.stall_seconds)
            self._drop_connection()
            return
        self.wfile.write(body)

    def _drop_connection(self) -> None:
        self.close_connection = True
        # The client may already have gone away; either way the connection is finished.
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


def _bearer(header: str | None) -> str | None:
    if header is None or not header.lower().startswith("bearer "):
        return None
    return header[7:].strip() or None
