"""Reading tool calls out of model text, on fixed outputs (the readers are pure).

A random-weight model never writes a <tool_call> block by itself, so the auto-mode parser
is fed the text Qwen 2.5 writes, split into every possible pair of stream chunks: what a
client gets must not depend on where the tokens happened to break.
"""

from __future__ import annotations

from typing import Any

import pytest
from sentiric_inference.config import LimitsSettings
from sentiric_inference.errors import InvalidRequestError
from sentiric_inference.http.streaming import assistant_message
from sentiric_inference.serving.tool_grammar import enforceable, tool_grammar
from sentiric_inference.serving.tool_output import (
    CallArguments,
    CallStart,
    Content,
    ForcedReader,
    HermesReader,
    OutputPart,
    OutputReader,
    PlainReader,
    reader_for,
)
from sentiric_inference.serving.types import ToolSet, ToolSpec


def _tool(name: str, parameters: dict[str, Any] | None = None) -> ToolSpec:
    schema = parameters or {"type": "object", "properties": {}}
    return ToolSpec(
        name=name,
        description=None,
        parameters=schema,
        definition={"type": "function", "function": {"name": name, "parameters": schema}},
    )


TOOLS = ToolSet(tools=(_tool("get_weather"), _tool("get_time")))


def _read(reader: OutputReader, chunks: list[str]) -> list[OutputPart]:
    parts: list[OutputPart] = []
    for chunk in chunks:
        parts += reader.feed(chunk)
    return parts + reader.finish()


def _splits(text: str) -> list[list[str]]:
    """The text whole, in single characters, and cut at every point into two chunks."""
    return [[text], list(text)] + [[text[:i], text[i:]] for i in range(1, len(text))]


def _message(text: str, tools: ToolSet = TOOLS) -> list[tuple[Any, ...]]:
    """The reply as (content, calls) for every way of streaming `text`; all must agree."""
    results = set()
    for chunks in _splits(text):
        message = assistant_message(_read(HermesReader(tools), chunks))
        calls = tuple(
            (call.function.name, call.function.arguments) for call in message.tool_calls or ()
        )
        results.add((message.content, calls))
    assert len(results) == 1, results
    return list(results)


QWEN_CALL = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'


def test_a_qwen_tool_call_becomes_a_call_with_no_markup_left() -> None:
    assert _message(QWEN_CALL) == [(None, (("get_weather", '{"city": "Paris"}'),))]


def test_two_calls_and_text_before_them() -> None:
    second = '<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>'
    text = f"Let me check.\n{QWEN_CALL}\n{second}"
    assert _message(text) == [
        ("Let me check.", (("get_weather", '{"city": "Paris"}'), ("get_time", "{}")))
    ]


def test_parallel_tool_calls_false_keeps_the_first_call() -> None:
    second = '<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>'
    tools = ToolSet(tools=TOOLS.tools, parallel=False)
    assert _message(f"{QWEN_CALL}\n{second}", tools) == [
        (None, (("get_weather", '{"city": "Paris"}'),))
    ]


@pytest.mark.parametrize(
    "text",
    [
        "<tool_call>\n{not json}\n</tool_call>",
        '<tool_call>\n{"name": "launch_rockets", "arguments": {}}\n</tool_call>',
        '<tool_call>\n{"name": "get_time", "arguments": [1]}\n</tool_call>',
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Par',
    ],
)
def test_a_block_that_is_no_valid_call_is_returned_as_content(text: str) -> None:
    assert _message(text) == [(text, ())]


def test_plain_text_with_angle_brackets_streams_as_content() -> None:
    text = "a < b and <tool> is not <tool_call"
    assert _message(text) == [(text, ())]
    # Text that cannot start a tag is not held back.
    reader = HermesReader(TOOLS)
    assert reader.feed("x < y") == [Content("x < y")]
    assert reader.feed(" <tool") == []  # could still become <tool_call>
    assert reader.feed("s>") == [Content(" <tools>")]


def test_arguments_written_as_a_json_string_are_accepted() -> None:
    text = '<tool_call>\n{"name": "get_time", "arguments": "{\\"zone\\": \\"UTC\\"}"}\n</tool_call>'
    assert _message(text) == [(None, (("get_time", '{"zone": "UTC"}'),))]


def test_a_stream_names_the_call_before_its_arguments() -> None:
    parts = _read(HermesReader(TOOLS), [QWEN_CALL])
    assert isinstance(parts[0], CallStart) and parts[0].name == "get_weather"
    assert parts[0].id.startswith("call_")
    assert parts[1] == CallArguments(0, '{"city": "Paris"}')


FORCED = ToolSet(tools=TOOLS.tools, choice="function", forced="get_time")


def test_the_forced_reader_streams_arguments_without_the_wrapper() -> None:
    text = '{"name": "get_time", "arguments": {"zone": "UTC"} }'
    for chunks in _splits(text):
        message = assistant_message(_read(ForcedReader(FORCED), chunks))
        assert message.content is None
        assert message.tool_calls is not None
        assert [(c.function.name, c.function.arguments) for c in message.tool_calls] == [
            ("get_time", '{"zone": "UTC"}')
        ]


def test_a_forced_call_cut_off_keeps_its_partial_arguments() -> None:
    parts = _read(ForcedReader(FORCED), ['{"name": "get_time", "arguments": {"zo'])
    message = assistant_message(parts)
    assert message.tool_calls is not None
    assert message.tool_calls[0].function.arguments == '{"zo'


def test_readers_for_each_choice() -> None:
    assert isinstance(reader_for(None), PlainReader)
    assert isinstance(reader_for(ToolSet(tools=TOOLS.tools, choice="none")), PlainReader)
    assert isinstance(reader_for(TOOLS), HermesReader)
    assert isinstance(reader_for(ToolSet(tools=TOOLS.tools, choice="required")), ForcedReader)


def test_integer_ranges_become_enums_and_unenforceable_keywords_are_refused() -> None:
    schema = {
        "type": "object",
        "properties": {"days": {"type": "integer", "minimum": 1, "maximum": 3}},
    }
    assert enforceable(schema, "f")["properties"]["days"] == {
        "type": "integer",
        "enum": [1, 2, 3],
    }
    for keyword, value in [("minimum", 0), ("multipleOf", 2), ("uniqueItems", True)]:
        bad = {"type": "object", "properties": {"x": {"type": "number", keyword: value}}}
        with pytest.raises(InvalidRequestError) as caught:
            enforceable(bad, "tools[0].function.parameters")
        assert caught.value.param == "tools[0].function.parameters"
        assert f"/properties/x/{keyword}" in caught.value.message


def test_the_forced_grammar_holds_two_tools_with_the_same_ref_names_apart() -> None:
    pytest.importorskip("llama_cpp")
    from llama_cpp.llama_grammar import LlamaGrammar

    def with_ref(kind: str) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {"v": {"$ref": "#/$defs/value"}},
            "required": ["v"],
            "$defs": {"value": {"type": kind}},
        }

    tools = ToolSet(
        tools=(_tool("a", with_ref("string")), _tool("b", with_ref("boolean"))), choice="required"
    )
    grammar = tool_grammar(tools, LimitsSettings())
    assert grammar is not None
    LlamaGrammar.from_string(grammar, verbose=False)  # llama.cpp parses it
    assert 'root ::= "{\\"name\\": \\"a\\", \\"arguments\\": " tool0-arguments "}"' in grammar
    # Each tool's "#/$defs/value" resolves within its own schema.
    assert "tool0-arguments-v ::= string" in grammar
    assert "tool1-arguments-v ::= boolean" in grammar
    # Without a forced choice, schemas are still checked, and no grammar is built.
    assert tool_grammar(TOOLS, LimitsSettings()) is None
    broken = ToolSet(tools=(_tool("a", {"type": "object", "properties": 3}),))  # type: ignore[dict-item]
    with pytest.raises(InvalidRequestError) as caught:
        tool_grammar(broken, LimitsSettings())
    assert caught.value.param == "tools[0].function.parameters"
