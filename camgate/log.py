"""Logging set-up: key=value or JSON lines, level filtering, optional rotating file.

Every record passes through a redaction filter, so a camera credential that slipped into a
message is masked before any handler writes it.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import sys
from datetime import UTC, datetime
from pathlib import Path

from camgate.camera import redact_text

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


class RedactingFilter(logging.Filter):
    """Masks URL credentials in the final message (and in exception text)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_text(message)
        if redacted != message or record.args:
            record.msg, record.args = redacted, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact_text(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


def _fields(record: logging.LogRecord) -> dict[str, object]:
    fields: dict[str, object] = {
        "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
        "level": record.levelname.lower(),
        "logger": record.name,
    }
    camera = getattr(record, "camera", None)
    if camera is not None:
        fields["camera"] = camera
    fields["msg"] = record.getMessage()
    if record.exc_text:
        fields["exc"] = record.exc_text
    return fields


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{key}={_quote(str(value))}" for key, value in _fields(record).items())


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(_fields(record), ensure_ascii=False)


def _quote(value: str) -> str:
    if value and not any(c in value for c in ' "=\n'):
        return value
    return json.dumps(value, ensure_ascii=False)


def configure_logging(
    level: str = "info",
    fmt: str = "text",
    file: Path | None = None,
    file_max_bytes: int = 10_000_000,
    file_backups: int = 5,
) -> None:
    """Replace the root handlers with camgate's (stderr, and the rotating file if given)."""
    formatter: logging.Formatter = JsonFormatter() if fmt == "json" else KeyValueFormatter()
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(
            logging.handlers.RotatingFileHandler(
                file, maxBytes=file_max_bytes, backupCount=file_backups, encoding="utf-8"
            )
        )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(RedactingFilter())
        root.addHandler(handler)
    root.setLevel(_LEVELS[level])
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
