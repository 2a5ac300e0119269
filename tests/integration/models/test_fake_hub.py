"""The fake Hub is faithful enough for huggingface_hub's own hf_hub_download."""

from __future__ import annotations

from pathlib import Path

import pytest
from huggingface_hub import hf_hub_download
from huggingface_hub.errors import GatedRepoError, RevisionNotFoundError

from tests.integration.models.samples import FILE, NOT_GRANTED_TOKEN, PRIVATE_REPO, REPO, TOKEN
from tests.support.fake_hub import FakeHub


def test_official_client_downloads_lfs_and_git_files(
    hub: FakeHub, model_bytes: bytes, tmp_path: Path
) -> None:
    lfs = hf_hub_download(REPO, FILE, local_dir=tmp_path / "l", endpoint=hub.url, token=False)
    assert Path(lfs).read_bytes() == model_bytes
    plain = hf_hub_download(
        REPO, "README.md", cache_dir=tmp_path / "c", endpoint=hub.url, token=False
    )
    assert Path(plain).read_bytes() == b"# tiny\n"
    served = [(r.server, r.method) for r in hub.requests]
    assert served == [("hub", "HEAD"), ("cdn", "GET"), ("hub", "HEAD"), ("hub", "GET")]


def test_official_client_sees_hub_errors(hub: FakeHub, tmp_path: Path) -> None:
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(
            REPO, FILE, revision="v9", cache_dir=tmp_path, endpoint=hub.url, token=False
        )
    with pytest.raises(GatedRepoError):
        hf_hub_download(
            PRIVATE_REPO, FILE, cache_dir=tmp_path, endpoint=hub.url, token=NOT_GRANTED_TOKEN
        )
    path = hf_hub_download(PRIVATE_REPO, FILE, cache_dir=tmp_path, endpoint=hub.url, token=TOKEN)
    assert Path(path).is_file()
