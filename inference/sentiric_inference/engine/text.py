"""Token bytes to streamable text: whole UTF-8 characters only, stop strings never emitted."""

from __future__ import annotations

import codecs
from dataclasses import dataclass


class StopMatcher:
    """Holds back just enough text to recognise stop strings split across tokens.

    Text that can no longer be the start of a stop string is released at once; the tail that
    still could be is kept until the next piece decides it. Invariant: the held-back tail never
    contains a whole stop string, so a match can only start inside it.
    """

    __slots__ = ("_held", "_stops")

    def __init__(self, stops: tuple[str, ...]) -> None:
        self._stops = tuple(s for s in stops if s)
        self._held = ""

    def feed(self, text: str) -> tuple[str, bool]:
        """Add new text; return (text safe to emit, whether a stop string matched)."""
        if not self._stops:
            return text, False
        buf = self._held + text
        cut = -1
        for stop in self._stops:
            at = buf.find(stop)
            if at != -1 and (cut == -1 or at < cut):
                cut = at
        if cut != -1:
            self._held = ""
            return buf[:cut], True
        keep = self._partial_tail(buf)
        self._held = buf[len(buf) - keep :] if keep else ""
        return buf[: len(buf) - keep], False

    def flush(self) -> str:
        """Release the held-back tail (the output ended for another reason)."""
        held, self._held = self._held, ""
        return held

    def _partial_tail(self, buf: str) -> int:
        longest = 0
        for stop in self._stops:
            for k in range(min(len(stop) - 1, len(buf)), longest, -1):
                if buf.endswith(stop[:k]):
                    longest = k
                    break
        return longest


@dataclass(slots=True)
class Piece:
    """What one generated token adds to the output."""

    text: str
    stopped: bool


class TextAssembler:
    """Turns token pieces (raw bytes) into text deltas for one request.

    The incremental decoder keeps a multi-byte character whose bytes arrive in different tokens
    until it is complete; invalid bytes become U+FFFD rather than an exception, since a model can
    emit any byte sequence.
    """

    __slots__ = ("_decoder", "_stop")

    def __init__(self, stops: tuple[str, ...]) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._stop = StopMatcher(stops)

    def feed(self, piece: bytes) -> Piece:
        text = self._decoder.decode(piece)
        if not text:
            return Piece("", False)
        emit, stopped = self._stop.feed(text)
        return Piece(emit, stopped)

    def finish(self) -> str:
        """Everything still held back, when the output ends without a stop string."""
        tail = self._decoder.decode(b"", final=True)
        emit, stopped = self._stop.feed(tail) if tail else ("", False)
        if stopped:
            return emit
        return emit + self._stop.flush()
