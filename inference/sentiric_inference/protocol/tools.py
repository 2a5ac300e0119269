"""OpenAI tool calling on the wire: `tools`, `tool_choice` and the tool fields of messages.

Checks the shapes cheaply, on the event loop, with every refusal naming the field as the
client wrote it (`tools[0].function.name`). The parameter schemas are only checked for type
here: bounding and validating them costs CPU in proportion to their size, so the serving
layer does it on a preparation worker (serving/tool_grammar.py).
"""

from __future__ import annotations

import json
import re
from typing import Any

from sentiric_inference.errors import InvalidRequestError, shown
from sentiric_inference.protocol.requests import ChatCompletionRequest, ChatMessage
from sentiric_inference.serving.types import ToolCall, ToolSet, ToolSpec

# OpenAI's own limit on tools per request, and its rule for function names (which also
# keeps a name safe to write into a grammar literal and a prompt).
MAX_TOOLS = 128
MAX_TOOL_CALLS_PER_MESSAGE = 128
_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
# An empty parameter list, as OpenAI reads a function without `parameters`.
_NO_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}}


def _invalid(param: str, message: str) -> InvalidRequestError:
    return InvalidRequestError(f"'{param}' {message}", param=param)


def _name(value: Any, param: str) -> str:
    if not isinstance(value, str):
        raise _invalid(param, "is required and must be a string.")
    if not _NAME.fullmatch(value):
        raise _invalid(
            param, "must be 1 to 64 characters of a-z, A-Z, 0-9, underscores and dashes."
        )
    return value


def _object(value: Any, param: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _invalid(param, "must be a JSON object.")
    return value


def _tool(value: Any, index: int) -> ToolSpec:
    where = f"tools[{index}]"
    tool = _object(value, where)
    if tool.get("type") != "function":
        raise _invalid(f"{where}.type", "must be 'function' (the only tool type served).")
    unknown = set(tool) - {"type", "function"}
    if unknown:
        raise _invalid(f"{where}.{sorted(unknown)[0]}", "is not a field of a function tool.")
    function = _object(tool.get("function"), f"{where}.function")
    unknown = set(function) - {"name", "description", "parameters", "strict"}
    if unknown:
        raise _invalid(f"{where}.function.{sorted(unknown)[0]}", "is not a field of a function.")
    name = _name(function.get("name"), f"{where}.function.name")
    description = function.get("description")
    if description is not None and not isinstance(description, str):
        raise _invalid(f"{where}.function.description", "must be a string.")
    strict = function.get("strict")
    if strict is not None and not isinstance(strict, bool):
        raise _invalid(f"{where}.function.strict", "must be a boolean.")
    parameters = function.get("parameters")
    if parameters is None:
        parameters = dict(_NO_PARAMETERS)
    parameters = _object(parameters, f"{where}.function.parameters")
    definition: dict[str, Any] = {"name": name}
    if description is not None:
        definition["description"] = description
    definition["parameters"] = parameters
    return ToolSpec(
        name=name,
        description=description,
        parameters=parameters,
        definition={"type": "function", "function": definition},
    )


def _choice(value: Any, names: set[str]) -> tuple[str, str | None]:
    """(choice, forced function name) for tool_choice (None means "auto")."""
    if value is None or value in ("auto", "none", "required"):
        return (value or "auto"), None
    if isinstance(value, str):
        raise _invalid(
            "tool_choice",
            "must be 'none', 'auto', 'required' or "
            '{"type": "function", "function": {"name": ...}}.',
        )
    choice = _object(value, "tool_choice")
    if choice.get("type") != "function":
        raise _invalid("tool_choice.type", "must be 'function'.")
    function = _object(choice.get("function"), "tool_choice.function")
    name = _name(function.get("name"), "tool_choice.function.name")
    if name not in names:
        raise _invalid(
            "tool_choice.function.name", f"names '{name}', which is not one of the 'tools'."
        )
    return "function", name


def tool_set(body: ChatCompletionRequest) -> tuple[ToolSet | None, int]:
    """The request's tools and their size in characters of JSON; (None, 0) without tools."""
    if body.tools is None:
        if body.tool_choice not in (None, "none"):
            raise _invalid("tool_choice", "is only allowed when 'tools' are given.")
        return None, 0
    if not isinstance(body.tools, list):  # pragma: no cover - the request model ensures it
        raise _invalid("tools", "must be an array.")
    if not body.tools:
        raise _invalid("tools", "must not be empty; leave it out to offer no tools.")
    if len(body.tools) > MAX_TOOLS:
        raise _invalid("tools", f"lists {len(body.tools)} tools; at most {MAX_TOOLS} are accepted.")
    specs = [_tool(value, index) for index, value in enumerate(body.tools)]
    seen: set[str] = set()
    for index, spec in enumerate(specs):
        if spec.name in seen:
            raise _invalid(f"tools[{index}].function.name", f"repeats the name '{spec.name}'.")
        seen.add(spec.name)
    choice, forced = _choice(body.tool_choice, seen)
    chars = len(json.dumps([spec.definition for spec in specs], ensure_ascii=False))
    return (
        ToolSet(
            tools=tuple(specs),
            choice=choice,  # type: ignore[arg-type]
            forced=forced,
            parallel=body.parallel_tool_calls is not False,
        ),
        chars,
    )


def message_tool_calls(message: ChatMessage, index: int) -> tuple[ToolCall, ...]:
    """An assistant message's `tool_calls`, with each call's arguments parsed."""
    where = f"messages[{index}].tool_calls"
    if not message.tool_calls:
        return ()
    if message.role != "assistant":
        raise _invalid(where, "is only allowed on assistant messages.")
    if len(message.tool_calls) > MAX_TOOL_CALLS_PER_MESSAGE:
        raise _invalid(where, f"holds more than {MAX_TOOL_CALLS_PER_MESSAGE} calls.")
    calls: list[ToolCall] = []
    for number, value in enumerate(message.tool_calls):
        call_at = f"{where}[{number}]"
        call = _object(value, call_at)
        call_id = call.get("id")
        if not isinstance(call_id, str) or not call_id:
            raise _invalid(f"{call_at}.id", "is required and must be a string.")
        if call.get("type", "function") != "function":
            raise _invalid(f"{call_at}.type", "must be 'function'.")
        function = _object(call.get("function"), f"{call_at}.function")
        name = _name(function.get("name"), f"{call_at}.function.name")
        arguments = function.get("arguments")
        if not isinstance(arguments, str):
            raise _invalid(f"{call_at}.function.arguments", "must be a string of JSON.")
        try:
            parsed = json.loads(arguments)
        except ValueError as exc:
            raise _invalid(
                f"{call_at}.function.arguments", f"is not valid JSON ({exc.args[0]})."
            ) from exc
        calls.append(ToolCall(id=call_id, name=name, arguments_json=arguments, arguments=parsed))
    return tuple(calls)


def check_tool_answers(messages: list[ChatMessage]) -> None:
    """Every `tool` message answers a call of the assistant message before it (as OpenAI
    requires), so a template never renders a result without its call."""
    open_ids: set[str] = set()
    for index, message in enumerate(messages):
        if message.role == "assistant":
            open_ids = {
                call["id"]
                for call in message.tool_calls or ()
                if isinstance(call, dict) and isinstance(call.get("id"), str)
            }
        elif message.role == "tool":
            where = f"messages[{index}].tool_call_id"
            if not isinstance(message.tool_call_id, str) or not message.tool_call_id:
                raise _invalid(where, "is required on a tool message.")
            if message.tool_call_id not in open_ids:
                raise _invalid(
                    where,
                    f"is {shown(message.tool_call_id)}, which no tool call of the preceding "
                    "assistant message has.",
                )
        else:
            open_ids = set()
