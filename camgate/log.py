"""Logging set-up: key=value or JSON lines, level filtering, optional rotating file.

Every record passes through a redaction filter, so a camera credential that slipped into a
message is masked before any handler writes it, and so is a viewer URL's signature (uvicorn
logs every WebSocket's request line, query included). The log file is still readable by its
owner only.
"""

from __future__ import annotations

import io
import json
import logging
import logging.handlers
import os
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

from camgate.camera import redact_text

# A signed viewer URL is a credential until it expires: `sig=` is what makes it one.
_SIGNATURE = re.compile(r"\bsig=[^&\s\"'#]+")

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
        redacted = _SIGNATURE.sub("sig=***", redact_text(message))
        if redacted != message or record.args:
            record.msg, record.args = redacted, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact_text(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


LOG_FILE_MODE = 0o600


class PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A rotating log file created 0600 whatever the umask (backups are renamed copies of it):
    it names cameras and repeats what FFmpeg says about them. An older, wider file is narrowed."""

    def _open(self) -> io.TextIOWrapper:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        fd = os.open(self.baseFilename, flags, LOG_FILE_MODE)
        try:
            os.fchmod(fd, LOG_FILE_MODE)
        except OSError:
            os.close(fd)
            raise
        # Kept open by the handler until close(), as the stock _open's stream is.
        stream = open(fd, self.mode, encoding=self.encoding, errors=self.errors)  # noqa: SIM115
        return cast(io.TextIOWrapper, stream)


def _narrow_backups(file: Path, backups: int) -> None:
    for n in range(1, backups + 1):
        backup = file.with_name(f"{file.name}.{n}")
        if backup.exists():
            backup.chmod(LOG_FILE_MODE)


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
        _narrow_backups(file, file_backups)
        handlers.append(
            PrivateRotatingFileHandler(
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
