"""Process logging: one JSON object per line in containers, plain text on a terminal.

Request-scoped fields (the HTTP `x-request-id`, the gRPC `x-trace-id` and `x-session-id`) live in context
variables, so every log line written while serving a request carries them without the
code that logs having to pass them around. Prompts and outputs are never logged here.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Literal

request_id_var: ContextVar[str | None] = ContextVar("sentiric_request_id", default=None)
trace_id_var: ContextVar[str | None] = ContextVar("sentiric_trace_id", default=None)
# The gRPC `x-session-id` a balanced client pins a conversation to one replica with.
session_id_var: ContextVar[str | None] = ContextVar("sentiric_session_id", default=None)
# The name of the API key a request came with (server.auth), never the key itself.
api_key_var: ContextVar[str | None] = ContextVar("sentiric_api_key", default=None)

# Record attributes that are not "extra" fields; uvicorn's color_message duplicates message.
_STANDARD_ATTRS = frozenset(vars(logging.makeLogRecord({})).keys()) | {
    "message",
    "asctime",
    "color_message",
}


@contextlib.contextmanager
def request_context(
    *, request_id: str | None = None, trace_id: str | None = None, session_id: str | None = None
) -> Iterator[None]:
    """Tag log lines written inside the block with the request's ids."""
    tokens = [
        request_id_var.set(request_id),
        trace_id_var.set(trace_id),
        session_id_var.set(session_id),
    ]
    try:
        yield
    finally:
        session_id_var.reset(tokens[2])
        trace_id_var.reset(tokens[1])
        request_id_var.reset(tokens[0])


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        if not hasattr(record, "trace_id"):
            record.trace_id = trace_id_var.get()
        if not hasattr(record, "session_id"):
            record.session_id = session_id_var.get()
        if not hasattr(record, "api_key"):
            record.api_key = api_key_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, request ids, extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and value is not None and not key.startswith("_"):
                entry[key] = value if isinstance(value, int | float | bool) else str(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ids = [
            f"{name}={value}"
            for name in ("request_id", "trace_id", "session_id", "api_key")
            if (value := getattr(record, name, None))
        ]
        return f"{line} [{' '.join(ids)}]" if ids else line


def configure_logging(fmt: Literal["json", "text"] = "text", level: str = "INFO") -> None:
    """Route the root logger (and uvicorn's) to stderr in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_ContextFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(_TextFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # uvicorn's own loggers propagate to ours instead of printing in their own format.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
