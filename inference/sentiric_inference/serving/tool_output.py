"""Read a generation's text as content and tool calls, as it streams.

Two layouts, one reader each:

* auto (HermesReader): the model writes calls its own way, which for Qwen 2.5 (and any model
  given the generic tools prompt, serving/prompting.py) is Hermes' markup:
  `<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>`. Text that could still be
  the start of a `<tool_call>` tag is held back, a block is held until it closes, and a
  block that parses as a call to an offered function becomes a call; any other block
  (bad JSON, an unknown function) is given back as content, markup and all, never an error.
* forced (ForcedReader): the grammar of serving/tool_grammar.py made the text
  `{"name": "f", "arguments": ...}`; the function is known once the fixed prefix is written,
  and the arguments stream as they come, less the closing brace, held back until the end.

Pure functions of the text fed in, so they are unit-tested on fixed model outputs.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Protocol

from sentiric_inference.serving.tool_grammar import call_prefix
from sentiric_inference.serving.types import ToolSet

OPEN_TAG = "<tool_call>"
CLOSE_TAG = "</tool_call>"


@dataclass(frozen=True, slots=True)
class Content:
    text: str


@dataclass(frozen=True, slots=True)
class CallStart:
    index: int
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class CallArguments:
    index: int
    text: str


OutputPart = Content | CallStart | CallArguments


class OutputReader(Protocol):
    calls: int

    def feed(self, text: str) -> list[OutputPart]: ...

    def finish(self) -> list[OutputPart]: ...


def new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


class PlainReader:
    """No tools offered: all text is content."""

    def __init__(self) -> None:
        self.calls = 0

    def feed(self, text: str) -> list[OutputPart]:
        return [Content(text)] if text else []

    def finish(self) -> list[OutputPart]:
        return []


def _partial_tag(text: str, tag: str) -> int:
    """Length of the longest end of `text` that begins `tag`."""
    for size in range(min(len(text), len(tag) - 1), 0, -1):
        if tag.startswith(text[-size:]):
            return size
    return 0


def parse_call(block: str, names: frozenset[str]) -> tuple[str, str] | None:
    """(name, arguments JSON) of one <tool_call> block's body, or None if it is no call."""
    try:
        value = json.loads(block)
    except ValueError:
        return None
    if not isinstance(value, dict) or value.get("name") not in names:
        return None
    arguments = value.get("arguments", value.get("parameters", {}))
    if isinstance(arguments, str):
        # Some models write the arguments as a JSON string, as OpenAI's wire does.
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return None
    if not isinstance(arguments, dict):
        return None
    return str(value["name"]), json.dumps(arguments, ensure_ascii=False)


class HermesReader:
    """Content and <tool_call> blocks (tool_choice auto)."""

    def __init__(self, tools: ToolSet) -> None:
        self._names = frozenset(tool.name for tool in tools.callable())
        self._parallel = tools.parallel
        self._buffer = ""
        self._in_call = False
        # Whitespace is held until more content follows: between and after calls it is noise.
        self._spaces = ""
        self.calls = 0

    def feed(self, text: str) -> list[OutputPart]:
        self._buffer += text
        parts: list[OutputPart] = []
        while True:
            if not self._in_call:
                start = self._buffer.find(OPEN_TAG)
                if start < 0:
                    keep = _partial_tag(self._buffer, OPEN_TAG)
                    cut = len(self._buffer) - keep
                    self._content(self._buffer[:cut], parts)
                    self._buffer = self._buffer[cut:]
                    return parts
                self._content(self._buffer[:start], parts)
                self._buffer = self._buffer[start + len(OPEN_TAG) :]
                self._in_call = True
            end = self._buffer.find(CLOSE_TAG)
            if end < 0:
                return parts
            block = self._buffer[:end]
            self._buffer = self._buffer[end + len(CLOSE_TAG) :]
            self._in_call = False
            self._block(block, closed=True, parts=parts)

    def finish(self) -> list[OutputPart]:
        parts: list[OutputPart] = []
        if self._in_call:
            # The model stopped inside a block (no closing tag, or out of tokens).
            self._block(self._buffer, closed=False, parts=parts)
        else:
            self._content(self._buffer, parts)
        self._buffer = ""
        if self._spaces and not self.calls:
            parts.append(Content(self._spaces))
        self._spaces = ""
        return parts

    def _content(self, text: str, parts: list[OutputPart]) -> None:
        # Trailing whitespace waits for more content: before, between and after calls it is
        # noise, and holding it always keeps the reply the same however the text was chunked.
        body = text.rstrip()
        if body:
            parts.append(Content(self._spaces + body))
            self._spaces = ""
        self._spaces += text[len(body) :]

    def _block(self, block: str, *, closed: bool, parts: list[OutputPart]) -> None:
        call = parse_call(block, self._names)
        if call is None:
            markup = OPEN_TAG + block + (CLOSE_TAG if closed else "")
            self._spaces, spaces = "", self._spaces
            parts.append(Content(spaces + markup))
            return
        if self.calls and not self._parallel:
            return  # parallel_tool_calls false: the first call only
        self._spaces = ""
        name, arguments = call
        parts.append(CallStart(self.calls, new_call_id(), name))
        parts.append(CallArguments(self.calls, arguments))
        self.calls += 1


class ForcedReader:
    """The one call a forced grammar produced (tool_choice required or named)."""

    def __init__(self, tools: ToolSet) -> None:
        self._prefixes = {call_prefix(tool.name): tool.name for tool in tools.callable()}
        self._buffer = ""
        self._started = False
        self._sent = 0  # characters of arguments already given out
        self.calls = 0

    def feed(self, text: str) -> list[OutputPart]:
        self._buffer += text
        parts: list[OutputPart] = []
        if not self._started:
            for prefix, name in self._prefixes.items():
                if self._buffer.startswith(prefix):
                    self._buffer = self._buffer[len(prefix) :]
                    self._started = True
                    self.calls = 1
                    parts.append(CallStart(0, new_call_id(), name))
                    break
            else:
                return parts
        # Hold back the last character (the wrapper's closing brace, once it is written) and
        # any whitespace before it.
        cut = len(self._buffer) - 1
        while cut > self._sent and self._buffer[cut - 1].isspace():
            cut -= 1
        if cut > self._sent:
            parts.append(CallArguments(0, self._buffer[self._sent : cut]))
            self._sent = cut
        return parts

    def finish(self) -> list[OutputPart]:
        if not self._started:
            # Cut off before the function was named: what there is, as content.
            return [Content(self._buffer)] if self._buffer else []
        final = self._buffer.rstrip()
        if final.endswith("}") and _is_json(final[:-1]):
            final = final[:-1].rstrip()
        rest = final[self._sent :]
        return [CallArguments(0, rest)] if rest else []


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def reader_for(tools: ToolSet | None) -> OutputReader:
    """The reader for a request's tools: plain text when none are offered."""
    if tools is None or not tools.offered:
        return PlainReader()
    if tools.constrained:
        return ForcedReader(tools)
    return HermesReader(tools)
