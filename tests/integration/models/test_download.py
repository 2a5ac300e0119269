"""`download_model` against a local fake Hub: resume, skip, checksums, auth, 404, stalls, disk."""

from __future__ import annotations

import hashlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sentiric_inference.models.downloading import (
    DownloadOptions,
    DownloadResult,
    download_model,
    partial_path,
)
from sentiric_inference.models.errors import (
    AuthError,
    ChecksumMismatchError,
    DiskFullError,
    NetworkError,
    NotFoundError,
)
from sentiric_inference.models.hub import HubFile
from sentiric_inference.models.markers import marker_path

from tests.integration.models.samples import FILE, REPO, TOKEN
from tests.support.fake_hub import FakeHub


def _options(hub: FakeHub, **overrides: float) -> DownloadOptions:
    values: dict[str, float] = {"timeout": 1.0, "attempts": 3, "backoff_initial": 0.05}
    values.update(overrides)
    return DownloadOptions(
        timeout=values["timeout"],
        attempts=int(values["attempts"]),
        backoff_initial=values["backoff_initial"],
        backoff_max=0.5,
        progress_interval=0.0,
        endpoint=hub.url,
    )


def _get(hub: FakeHub, source: HubFile, cache: Path, **kwargs: object) -> DownloadResult:
    return download_model(source, cache, options=_options(hub), **kwargs)  # type: ignore[arg-type]


SOURCE = HubFile(REPO, FILE)


def test_download_via_cdn_redirect_verifies_and_marks(
    hub: FakeHub, model_bytes: bytes, tmp_path: Path
) -> None:
    result = _get(hub, SOURCE, tmp_path)
    assert result.path == tmp_path / FILE
    assert result.downloaded
    assert result.path.read_bytes() == model_bytes
    assert result.sha256 == hashlib.sha256(model_bytes).hexdigest()
    assert marker_path(result.path).is_file()
    assert not partial_path(result.path).exists()
    cdn_gets = [r for r in hub.content_gets() if r.server == "cdn"]
    assert len(cdn_gets) == 1
    assert cdn_gets[0].range is None


def test_token_goes_to_the_hub_but_not_to_the_cdn(
    hub: FakeHub, model_bytes: bytes, tmp_path: Path
) -> None:
    result = _get(hub, HubFile("acme/private-GGUF", FILE), tmp_path, token=TOKEN)
    assert result.path.read_bytes() == model_bytes
    heads = [r for r in hub.requests if r.method == "HEAD"]
    assert heads
    assert all(r.authorization == f"Bearer {TOKEN}" for r in heads)
    assert all(r.authorization is None for r in hub.content_gets() if r.server == "cdn")


def test_plain_git_file_has_no_hub_hash_but_a_pin_still_applies(
    hub: FakeHub, tmp_path: Path
) -> None:
    readme = HubFile(REPO, "README.md")
    result = _get(hub, readme, tmp_path / "a")
    assert result.path.read_bytes() == b"# tiny\n"
    # The Hub gives only a git sha1 for non-LFS files, so a wrong pin is caught after the
    # transfer, and the bad file is deleted.
    with pytest.raises(ChecksumMismatchError, match="was deleted"):
        _get(hub, readme, tmp_path / "b", sha256="ab" * 32)
    assert not (tmp_path / "b" / "README.md").exists()
    assert not partial_path(tmp_path / "b" / "README.md").exists()


def test_second_run_skips_without_any_request(hub: FakeHub, tmp_path: Path) -> None:
    first = _get(hub, SOURCE, tmp_path)
    seen = len(hub.requests)
    second = _get(hub, SOURCE, tmp_path, sha256=first.sha256)
    assert not second.downloaded
    assert second.sha256 == first.sha256
    assert len(hub.requests) == seen, "a verified file must not even be looked up"


def test_marker_is_ignored_once_the_file_changes(
    hub: FakeHub, model_bytes: bytes, tmp_path: Path
) -> None:
    first = _get(hub, SOURCE, tmp_path)
    damaged = bytearray(model_bytes)
    damaged[100] ^= 0x01
    first.path.write_bytes(bytes(damaged))
    again = _get(hub, SOURCE, tmp_path)
    assert again.downloaded
    assert again.path.read_bytes() == model_bytes


def test_present_file_without_marker_is_verified_once_not_downloaded(
    hub: FakeHub, model_bytes: bytes, tmp_path: Path
) -> None:
    (tmp_path / FILE).write_bytes(model_bytes)
    result = _get(hub, SOURCE, tmp_path)
    assert not result.downloaded
    assert hub.content_gets() == []
    assert marker_path(result.path).is_file()


def test_resume_after_connection_cut_mid_file(
    hub: FakeHub, model_bytes: bytes, tmp_path: Path
) -> None:
    hub.faults.cut_times = 2
    hub.faults.cut_after = 1_000_000
    result = _get(hub, SOURCE, tmp_path)
    assert result.path.read_bytes() == model_bytes
    ranges = [r.range for r in hub.content_gets()]
    assert ranges == [None, "bytes=1000000-", "bytes=2000000-"]


def test_partial_of_another_version_is_discarded(
    hub: FakeHub, model_bytes: bytes, tmp_path: Path
) -> None:
    partial = partial_path(tmp_path / FILE)
    partial.write_bytes(b"x" * 1000)
    partial.with_name(partial.name + ".etag").write_text("0" * 64)
    result = _get(hub, SOURCE, tmp_path)
    assert result.path.read_bytes() == model_bytes
    assert hub.content_gets()[-1].range is None


def test_pin_contradicting_the_hub_hash_fails_before_downloading(
    hub: FakeHub, tmp_path: Path
) -> None:
    with pytest.raises(ChecksumMismatchError, match="nothing was downloaded") as info:
        _get(hub, SOURCE, tmp_path, sha256="0" * 64)
    assert info.value.exit_code == 5
    assert hub.content_gets() == []
    assert not (tmp_path / FILE).exists()


def test_bytes_not_matching_the_hub_hash_are_deleted(hub: FakeHub, tmp_path: Path) -> None:
    hub.faults.corrupt = True
    with pytest.raises(ChecksumMismatchError, match="was deleted"):
        _get(hub, SOURCE, tmp_path)
    assert not (tmp_path / FILE).exists()
    assert not partial_path(tmp_path / FILE).exists()
    assert not marker_path(tmp_path / FILE).exists()


@pytest.mark.parametrize(
    ("repo", "token", "status"),
    [
        ("acme/private-GGUF", None, 401),
        ("acme/private-GGUF", "hf_wrong", 401),
        ("acme/private-GGUF", "hf_not_granted", 403),
    ],
)
def test_auth_failures_name_the_token_secret(
    hub: FakeHub, tmp_path: Path, repo: str, token: str | None, status: int
) -> None:
    with pytest.raises(AuthError, match="tokenSecretRef") as info:
        _get(hub, HubFile(repo, FILE), tmp_path, token=token)
    assert f"HTTP {status}" in info.value.message
    assert info.value.exit_code == 3
    assert hub.content_gets() == []


@pytest.mark.parametrize(
    ("source", "what"),
    [
        (HubFile("Qwen/Missing-GGUF", FILE), "repository 'Qwen/Missing-GGUF' not found"),
        (HubFile(REPO, "missing.gguf"), "file 'missing.gguf' not found"),
        (HubFile(REPO, FILE, revision="v9"), "revision 'v9' not found"),
    ],
)
def test_not_found_says_what_is_missing(
    hub: FakeHub, tmp_path: Path, source: HubFile, what: str
) -> None:
    with pytest.raises(NotFoundError, match=what) as info:
        _get(hub, source, tmp_path)
    assert info.value.exit_code == 4


def test_stall_times_out_then_retry_succeeds(
    hub: FakeHub, model_bytes: bytes, tmp_path: Path
) -> None:
    hub.faults.stall_times = 1
    hub.faults.stall_after = 0
    started = time.monotonic()
    result = _get(hub, SOURCE, tmp_path)
    assert result.path.read_bytes() == model_bytes
    assert len(hub.content_gets()) == 2
    # One 1 s read timeout plus a short backoff, never the 30 s stall.
    assert time.monotonic() - started < 10


def test_stall_on_every_attempt_gives_up_with_network_error(hub: FakeHub, tmp_path: Path) -> None:
    hub.faults.stall_times = 100
    started = time.monotonic()
    with pytest.raises(NetworkError, match="ReadTimeout") as info:
        _get(hub, SOURCE, tmp_path)
    assert info.value.exit_code == 7
    assert len(hub.content_gets()) == 3
    assert time.monotonic() - started < 15


def test_server_errors_are_retried(hub: FakeHub, model_bytes: bytes, tmp_path: Path) -> None:
    hub.faults.status = 503
    hub.faults.status_times = 2
    result = _get(hub, SOURCE, tmp_path)
    assert result.path.read_bytes() == model_bytes
    assert len(hub.content_gets()) == 3


def test_unreachable_hub_is_a_network_error(tmp_path: Path) -> None:
    hub = FakeHub()
    hub.start()
    hub.stop()  # a port that was just closed: connection refused
    with pytest.raises(NetworkError, match="ConnectError"):
        download_model(SOURCE, tmp_path, options=_options(hub))


@pytest.fixture
def tiny_volume(tmp_path: Path) -> Iterator[Path]:
    """A real 1 MiB tmpfs mount, so the kernel itself answers ENOSPC."""
    mount_point = tmp_path / "volume"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root/CAP_SYS_ADMIN): {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_too_small_volume_is_refused_before_downloading(hub: FakeHub, tiny_volume: Path) -> None:
    with pytest.raises(DiskFullError, match=r"spec\.model\.cache\.size") as info:
        _get(hub, SOURCE, tiny_volume)
    assert info.value.exit_code == 6
    assert hub.content_gets() == []


def test_disk_filling_up_mid_transfer_is_disk_full(hub: FakeHub, tiny_volume: Path) -> None:
    # Without a size from the Hub there is no up-front check: the write itself hits ENOSPC.
    hub.faults.hide_size = True
    with pytest.raises(DiskFullError, match="no space left") as info:
        _get(hub, SOURCE, tiny_volume)
    assert info.value.exit_code == 6
    assert not (tiny_volume / FILE).exists()
