"""JSON log lines carry the request ids bound with request_context."""

from __future__ import annotations

import json
import logging

from sentiric_inference.logging_setup import JsonFormatter, _ContextFilter, request_context


def _format(record: logging.LogRecord) -> dict[str, object]:
    _ContextFilter().filter(record)
    parsed: dict[str, object] = json.loads(JsonFormatter().format(record))
    return parsed


def _record(message: str, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("sentiric.test", logging.INFO, __file__, 1, message, (), None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_request_ids_are_added_inside_the_context_only() -> None:
    with request_context(request_id="req-1", trace_id="trace-9"):
        inside = _format(_record("hello %s"))
    outside = _format(_record("bye"))
    assert inside["request_id"] == "req-1" and inside["trace_id"] == "trace-9"
    assert "request_id" not in outside and "trace_id" not in outside
    assert inside["level"] == "INFO" and inside["logger"] == "sentiric.test"


def test_extras_and_exceptions_are_kept() -> None:
    record = _record("done", status=200, path="/v1/models")
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    line = _format(record)
    assert line["status"] == 200 and line["path"] == "/v1/models"
    assert "ValueError: boom" in str(line["exception"])
