"""The UTF-8 guard's automaton agrees with Python's strict decoder on every byte string."""

from __future__ import annotations

import random

import numpy as np
from sentiric_inference.engine.utf8_guard import BOUNDARY, INVALID, Utf8Table, advance


def _complete(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


# One byte from each range a continuation byte's rule can ask for (80-8F, 90-9F, A0-BF).
_CONTINUATIONS = [b"\x80", b"\x90", b"\xa0"]


def _prefix_of_valid(data: bytes) -> bool:
    # Python's incremental decoder accepts b"\xed\xa1" (a surrogate's start) until more
    # bytes come, so try every completion of up to three continuation bytes instead.
    tails = [b""]
    for _ in range(3):
        tails += [t + c for t in tails if len(t) == len(tails[-1]) for c in _CONTINUATIONS]
    return any(_complete(data + tail) for tail in tails)


def test_automaton_matches_pythons_decoder_on_random_and_edge_bytes() -> None:
    rng = random.Random(7)
    edges = [
        b"\xc0\x80",  # overlong
        b"\xe0\x80\x80",  # overlong
        b"\xed\xa0\x80",  # surrogate
        b"\xf4\x90\x80\x80",  # above U+10FFFF
        b"\xf8\x88\x80\x80",  # no such lead byte; llama.cpp's grammar counts it as one char
        "añ€😀".encode(),
    ]
    samples = edges + [
        bytes(rng.randrange(256) for _ in range(rng.randrange(1, 7))) for _ in range(5_000)
    ]
    for data in samples:
        state = advance(BOUNDARY, data)
        assert (state == BOUNDARY) == _complete(data), data
        assert (state != INVALID) == _prefix_of_valid(data), data


def test_table_bans_fragments_at_a_boundary_and_whole_tokens_mid_character() -> None:
    pieces = [b"a", "€".encode()[:1], "€".encode()[1:], b"\xff", b"", "€".encode()]
    table = Utf8Table.from_pieces(pieces)
    assert list(table.banned[BOUNDARY]) == [2, 3]
    mid = advance(BOUNDARY, pieces[1])
    assert list(np.flatnonzero(table.allowed[mid])) == [2]
