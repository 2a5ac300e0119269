"""pydantic error locations become OpenAI `param` strings."""

from __future__ import annotations

import pytest
from sentiric_inference.http.errors import location_param


@pytest.mark.parametrize(
    ("loc", "param"),
    [
        (("body", "messages", 0, "role"), "messages[0].role"),
        (("body", "temperature"), "temperature"),
        (("body", "stop", "list[str]", 1), "stop[1]"),
        (("body", "stop", "str"), "stop"),
        (
            ("body", "messages", 2, "content", "list[TextPart]", 0, "type"),
            "messages[2].content[0].type",
        ),
        (("body",), None),
    ],
)
def test_location_param(loc: tuple[int | str, ...], param: str | None) -> None:
    assert location_param(loc) == param
