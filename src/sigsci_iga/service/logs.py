"""JSON log lines: time, level, event, and the request, task or run they are about."""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

#: The id of the API request being served; travels into the tasks it creates and their journal.
REQUEST_ID: ContextVar[str | None] = ContextVar("sigsci_iga_request_id", default=None)
#: Attributes a log call may pass in `extra=` that become fields of the line.
_FIELDS = (
    "request_id",
    "task_id",
    "run_id",
    "endpoint",
    "schedule",
    "method",
    "route",
    "status",
    "duration_ms",
    "principal",
    # `serve --workers N`: which service process, and how it ended.
    "index",
    "child",
    "code",
    "signal",
)
_CONTROL = {i: f"\\x{i:02x}" for i in (*range(32), 127) if chr(i) not in "\t"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line; nothing from outside can break a line or inject one."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "event": record.getMessage(),
            "logger": record.name,
            # Under `serve --workers N` several processes write to the same stream.
            "pid": record.process,
        }
        request_id = getattr(record, "request_id", None) or REQUEST_ID.get()
        if request_id:
            line["request_id"] = request_id
        for name in _FIELDS[1:]:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info and record.exc_info[0] is not None:
            # The exception's type only: its text may carry anything a server said.
            line["error"] = record.exc_info[0].__name__
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    """Human lines for a terminal; control characters are shown, never passed through."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text.translate(_CONTROL)


def configure(fmt: str, *, level: str = "info", stream: TextIO | None = None) -> None:
    """Send this process's logs (ours, uvicorn's) to `stream` in `fmt` (`json` or `text`)."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(
        JsonFormatter() if fmt == "json" else TextFormatter("%(asctime)s %(levelname)s %(message)s")
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True
    # Our request log replaces uvicorn's access log, which would print query strings.
    logging.getLogger("uvicorn.access").disabled = True
    # stamina announces each retry; the request or job log says what failed.
    logging.getLogger("stamina").setLevel(logging.ERROR)
