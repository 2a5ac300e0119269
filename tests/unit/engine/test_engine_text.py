"""Streaming text: UTF-8 holdback across token pieces and stop strings split across tokens."""

from __future__ import annotations

import pytest
from sentiric_inference.engine.text import StopMatcher, TextAssembler


def _run(pieces: list[bytes], stops: tuple[str, ...]) -> tuple[list[str], bool, str]:
    """Feed pieces until a stop matches; return (deltas, stopped, tail flushed at the end)."""
    assembler = TextAssembler(stops)
    deltas: list[str] = []
    for piece in pieces:
        out = assembler.feed(piece)
        if out.text:
            deltas.append(out.text)
        if out.stopped:
            return deltas, True, ""
    return deltas, False, assembler.finish()


def test_multibyte_character_split_across_pieces_is_never_cut() -> None:
    data = "añ€😀".encode()
    pieces = [data[i : i + 1] for i in range(len(data))]  # one byte per token
    deltas, stopped, tail = _run(pieces, ())
    assert not stopped
    assert "".join(deltas) + tail == "añ€😀"
    # Every delta is whole characters: re-encoding each gives back valid, complete UTF-8.
    for delta in deltas:
        assert "\ufffd" not in delta
    assert deltas == ["a", "ñ", "€", "😀"]


def test_invalid_bytes_become_replacement_characters() -> None:
    deltas, _, tail = _run([b"ok", b"\xff", b"!"], ())
    assert "".join(deltas) + tail == "ok\ufffd!"


def test_incomplete_character_at_the_end_is_flushed_as_replacement() -> None:
    deltas, _, tail = _run([b"x", "€".encode()[:2]], ())
    assert deltas == ["x"]
    assert tail == "\ufffd"


@pytest.mark.parametrize(
    ("pieces", "stops", "emitted"),
    [
        ([b"Hello", b" wor", b"ld", b"END", b"more"], ("END",), "Hello world"),
        ([b"Hel", b"lo E", b"N", b"D!"], ("END",), "Hello "),  # stop split over three pieces
        ([b"a<", b"|im", b"_end|>", b"zzz"], ("<|im_end|>",), "a"),
        ([b"abcSTOP"], ("STOP",), "abc"),
        ([b"x", b"yz"], ("yz", "xy"), ""),  # earliest match wins
    ],
)
def test_stop_string_is_cut_and_never_emitted(
    pieces: list[bytes], stops: tuple[str, ...], emitted: str
) -> None:
    deltas, stopped, _ = _run(pieces, stops)
    assert stopped
    assert "".join(deltas) == emitted


def test_only_a_possible_stop_prefix_is_held_back() -> None:
    assembler = TextAssembler(("END",))
    assert assembler.feed(b"abc E").text == "abc "  # "E" could start "END"
    assert assembler.feed(b"N").text == ""  # "EN" still could
    out = assembler.feed(b"X")  # "ENX" cannot: released at once
    assert (out.text, out.stopped) == ("ENX", False)


def test_held_back_prefix_is_released_when_output_ends_otherwise() -> None:
    deltas, stopped, tail = _run([b"value: E", b"N"], ("END",))
    assert not stopped
    assert "".join(deltas) == "value: "
    assert tail == "EN"


def test_stop_matcher_with_multibyte_stop_and_overlapping_candidates() -> None:
    matcher = StopMatcher(("ééx", "éa"))
    assert matcher.feed("zé") == ("z", False)
    assert matcher.feed("é") == ("", False)  # "éé" may still become "ééx"
    assert matcher.feed("a") == ("é", True)  # "éa" matched after the first é


def test_empty_stop_strings_are_ignored() -> None:
    deltas, stopped, tail = _run([b"abc"], ("",))
    assert (deltas, stopped, tail) == (["abc"], False, "")
