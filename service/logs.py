"""Log lines for people (plain text) or for log collectors (one JSON object per line), chosen with
``BACKPROP_LOG_FORMAT``; the same for gunicorn, the app, the training worker and the CLI."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any, Literal

PLAIN = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "pid", "message"[, "exception"]}`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def formatter(kind: Literal["plain", "json"]) -> dict[str, Any]:
    """The formatter's entry in a ``logging.config.dictConfig`` dictionary."""
    return {"()": JsonFormatter} if kind == "json" else {"format": PLAIN}


def configure(level: int, kind: Literal["plain", "json"]) -> None:
    """The root logger of a command-line process: ``level`` and up, to standard error."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if kind == "json" else logging.Formatter(PLAIN))
    logging.basicConfig(level=level, handlers=[handler])
