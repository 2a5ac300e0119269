"""response_format: the model's output is constrained to valid JSON (and to the schema)."""

from __future__ import annotations

import json

import jsonschema
import pytest

from tests.integration.http.conftest import SMOL, TINY, client_for
from tests.support.server import ServerHandle

pytestmark = pytest.mark.model

SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 24},
        "country": {"type": "string", "enum": ["France", "Germany", "Italy"]},
        "population_millions": {"type": "integer"},
        "is_capital": {"type": "boolean"},
    },
    "required": ["city", "country", "population_millions", "is_capital"],
    "additionalProperties": False,
}


def test_json_schema_output_validates_against_the_schema(smol_server: ServerHandle) -> None:
    reply = client_for(smol_server).chat.completions.create(
        model=SMOL,
        max_tokens=200,
        temperature=0,
        messages=[{"role": "user", "content": "Describe Paris as JSON."}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "city", "schema": SCHEMA, "strict": True},
        },
    )
    assert reply.choices[0].finish_reason == "stop", reply.choices[0].message.content
    data = json.loads(reply.choices[0].message.content or "")
    jsonschema.validate(data, SCHEMA)


def test_json_object_output_parses(tiny_server: ServerHandle) -> None:
    # Even random weights produce parseable JSON when the grammar constrains every token.
    reply = client_for(tiny_server).chat.completions.create(
        model=TINY,
        max_tokens=200,
        temperature=0,
        messages=[{"role": "user", "content": "json please"}],
        response_format={"type": "json_object"},
    )
    content = reply.choices[0].message.content or ""
    if reply.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(content), dict)
    else:
        # Cut off by max_tokens: still a valid JSON prefix starting an object.
        assert content.lstrip().startswith("{")
