"""Verified-markers: trusted while size and mtime match, ignored once the file changes."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from sentiric_inference.models.markers import (
    marker_path,
    read_marker,
    sha256_file,
    still_valid,
    write_marker,
)


def test_sha256_file_matches_hashlib(tmp_path: Path) -> None:
    data = os.urandom(9 * 1024 * 1024 + 7)  # crosses the 8 MiB read size
    path = tmp_path / "m.gguf"
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()


def test_round_trip_and_invalidation(tmp_path: Path) -> None:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"abc")
    written = write_marker(model, sha256="f" * 64, repo="r/x", revision="main", file="m.gguf")
    assert marker_path(model) == tmp_path / ".m.gguf.verified.json"
    assert read_marker(model) == written
    assert still_valid(written, model)
    stat = model.stat()
    os.utime(model, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert not still_valid(written, model)
    model.unlink()
    assert not still_valid(written, model)


def test_unreadable_marker_is_no_marker(tmp_path: Path) -> None:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"abc")
    marker_path(model).write_text("{not json")
    assert read_marker(model) is None
    marker_path(model).write_text('{"sha256": "x"}')
    assert read_marker(model) is None
