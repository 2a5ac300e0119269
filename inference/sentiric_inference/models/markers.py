"""Verified-markers: a small JSON file next to a model recording that it was hash-checked.

Re-hashing a multi-GB GGUF at every pod start costs minutes, so once a file is verified its
size, mtime and sha256 (and where it came from) are written beside it. A later run trusts the
file as long as size and mtime still match the marker, with no network and no hashing.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

_CHUNK = 8 * 1024 * 1024


@dataclass(frozen=True)
class Marker:
    sha256: str
    size: int
    mtime_ns: int
    repo: str
    revision: str
    file: str


def marker_path(model: Path) -> Path:
    return model.with_name(f".{model.name}.verified.json")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def read_marker(model: Path) -> Marker | None:
    """The marker beside `model`, or None when absent or unreadable (then the file is rechecked)."""
    try:
        data = json.loads(marker_path(model).read_text())
        return Marker(**data)
    except (OSError, ValueError, TypeError):
        return None


def write_marker(model: Path, *, sha256: str, repo: str, revision: str, file: str) -> Marker:
    """Record `model` as verified; written aside and renamed so a crash never leaves half a marker."""
    stat = model.stat()
    marker = Marker(
        sha256=sha256,
        size=stat.st_size,
        mtime_ns=stat.st_mtime_ns,
        repo=repo,
        revision=revision,
        file=file,
    )
    target = marker_path(model)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(json.dumps(asdict(marker), sort_keys=True))
    os.replace(tmp, target)
    return marker


def still_valid(marker: Marker, model: Path) -> bool:
    """The file is the one that was verified: same size and modification time."""
    try:
        stat = model.stat()
    except OSError:
        return False
    return stat.st_size == marker.size and stat.st_mtime_ns == marker.mtime_ns
