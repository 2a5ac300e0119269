"""The bounds of each sampling parameter, declared once.

The profile's defaults (config.SamplingDefaults, which the operator's CRD schema mirrors and
tests/unit/operator/test_operator_crd.py holds to them) and every request's values
(serving/params.py) are checked against these same types.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

Temperature = Annotated[float, Field(ge=0.0, le=2.0)]
TopP = Annotated[float, Field(gt=0.0, le=1.0)]
MinP = Annotated[float, Field(ge=0.0, le=1.0)]
RepeatPenalty = Annotated[float, Field(gt=0.0, le=10.0)]
# OpenAI's frequency_penalty and presence_penalty.
Penalty = Annotated[float, Field(ge=-2.0, le=2.0)]


def _number(value: float) -> str:
    return f"{value:g}"


def bounds(bounded: Any) -> dict[str, float]:
    """An annotated type's bounds by kind: {"ge": 0.0, "le": 2.0}, {"gt": 0.0, "le": 1.0}."""
    found: dict[str, float] = {}
    for info in bounded.__metadata__:
        # pydantic keeps Field(ge=...) as annotated-types objects, one per bound.
        for bound in getattr(info, "metadata", [info]):
            for kind in ("ge", "gt", "le", "lt"):
                if hasattr(bound, kind):
                    found[kind] = getattr(bound, kind)
    return found


def describe(bounded: Any) -> str:
    """The range of an annotated type in words: "between 0 and 2", "in (0, 1]"."""
    found = bounds(bounded)
    low_open, high_open = "gt" in found, "lt" in found
    lower = found["gt"] if low_open else found["ge"]
    upper = found["lt"] if high_open else found["le"]
    if not low_open and not high_open:
        return f"between {_number(lower)} and {_number(upper)}"
    return f"in {'(' if low_open else '['}{_number(lower)}, {_number(upper)}{')' if high_open else ']'}"
