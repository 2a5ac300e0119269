"""The API key file: its format, names, constant-time lookup, reload on change, fail closed."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from sentiric_inference.errors import UnauthenticatedError
from sentiric_inference.serving.keys import (
    KeyFileError,
    KeyRing,
    bare_key_name,
    bearer_token,
    parse_keys,
)

ALICE = "alice-0123456789abcdef"
BOB = "bob-fedcba9876543210"
CAROL = "carol-00112233445566778899"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _write(path: Path, text: str) -> None:
    # Write a new file and rename it over the old one, as the kubelet's symlink swap does:
    # the inode changes even when size and mtime (coarse on some filesystems) would not.
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def test_names_comments_blank_lines_and_bare_keys() -> None:
    keys = parse_keys(f"# team keys\n\nbilling:{ALICE}\n  {BOB}  \nsearch-app : {CAROL}\n")
    assert sorted(keys.values()) == sorted(["billing", bare_key_name(BOB), "search-app"])
    assert bare_key_name(BOB).startswith("key-") and len(bare_key_name(BOB)) == 12
    # The name of a bare key says nothing useful about the key.
    assert bare_key_name(BOB)[4:] not in BOB


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("short", "at least 16"),
        (f"billing:{ALICE}\nbilling:{BOB}\n", "used twice"),
        (f"{ALICE}\n{ALICE}\n", "listed twice"),
        (f"bad name:{ALICE}\n", "the name before ':'"),
        ("billing:" + "x" * 10 + " " + "y" * 10, "without spaces"),
    ],
)
def test_a_bad_file_names_the_line_but_never_the_key(text: str, message: str) -> None:
    with pytest.raises(KeyFileError, match=message) as info:
        parse_keys(text)
    assert "line" in str(info.value)
    assert ALICE not in str(info.value) and BOB not in str(info.value)


@pytest.mark.parametrize(
    ("header", "token"),
    [
        (f"Bearer {ALICE}", ALICE),
        (f"bearer   {ALICE} ", ALICE),
        (f"Basic {ALICE}", None),
        ("Bearer", None),
        ("", None),
        (None, None),
    ],
)
def test_bearer_token(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


def test_authenticate_maps_a_key_to_its_name(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(f"billing:{ALICE}\n{BOB}\n")
    ring = KeyRing(path)
    assert ring.authenticate(ALICE).name == "billing"
    assert ring.authenticate(BOB).name == bare_key_name(BOB)
    for wrong in (ALICE[:-1], ALICE + "x", "", "\ud800" * 20):
        with pytest.raises(UnauthenticatedError) as info:
            ring.authenticate(wrong)
        assert wrong not in info.value.message or not wrong
    with pytest.raises(UnauthenticatedError, match="Authorization: Bearer"):
        ring.authenticate(None)


def test_a_changed_file_is_read_again_within_the_check_interval(tmp_path: Path) -> None:
    path, clock = tmp_path / "keys", Clock()
    path.write_text(f"billing:{ALICE}\n")
    ring = KeyRing(path, clock=clock)
    _write(path, f"search:{BOB}\n")
    # Checked at most once a second: the old key still works until then.
    clock.now += 0.5
    assert ring.authenticate(ALICE).name == "billing"
    clock.now += 0.6
    assert ring.authenticate(BOB).name == "search"
    with pytest.raises(UnauthenticatedError):
        ring.authenticate(ALICE)


def test_a_broken_or_missing_file_keeps_the_last_good_keys_and_warns_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path, clock = tmp_path / "keys", Clock()
    path.write_text(f"billing:{ALICE}\n")
    ring = KeyRing(path, clock=clock)
    _write(path, f"billing:{BOB}\nshort\n")
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            clock.now += 2
            assert ring.authenticate(ALICE).name == "billing"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "line 2" in warnings[0].getMessage()
    path.unlink()
    clock.now += 2
    assert ring.authenticate(ALICE).name == "billing"
    # Fixed again: the new keys are taken.
    _write(path, f"billing:{BOB}\n")
    clock.now += 2
    assert ring.authenticate(BOB).name == "billing"
    assert all(ALICE not in r.getMessage() and BOB not in r.getMessage() for r in caplog.records)


def test_an_emptied_file_refuses_everyone(tmp_path: Path) -> None:
    path, clock = tmp_path / "keys", Clock()
    path.write_text(f"billing:{ALICE}\n")
    ring = KeyRing(path, clock=clock)
    _write(path, "# every key revoked\n")
    clock.now += 2
    with pytest.raises(UnauthenticatedError):
        ring.authenticate(ALICE)
    assert ring.names == ()


def test_a_file_that_cannot_be_used_at_start_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="cannot read the API key file"):
        KeyRing(tmp_path / "missing")
    (tmp_path / "bad").write_text("short\n")
    with pytest.raises(KeyFileError, match=r"apiKeysFile\) is invalid: line 1"):
        KeyRing(tmp_path / "bad")


def test_the_log_names_keys_but_never_shows_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "keys"
    path.write_text(f"billing:{ALICE}\n{BOB}\n")
    with caplog.at_level(logging.INFO):
        KeyRing(path)
    text = caplog.text
    assert "billing" in text and bare_key_name(BOB) in text
    assert ALICE not in text and BOB not in text
