"""Maps camgate's error types and request validation failures to the seed's JSON envelope."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from camgate.camera import redact_text
from camgate.errors import (
    AlreadyRunning,
    CamgateError,
    CapacityReached,
    InvalidInput,
    NotFound,
    StoreError,
    TooManyCameras,
)
from camgate.status import ErrorReply

log = logging.getLogger("camgate.api")

# A reply to bad input stays small whatever the input (a body of 10,000 unknown keys).
MAX_ERRORS_SHOWN = 5
MAX_FIELD_CHARS = 64
ID_FIELDS = ("camera_id", "cameraId")
CAMERA_ID_RULE = "must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"

# For the OpenAPI schema: every error reply is the same envelope.
ERROR_REPLIES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorReply, "description": meaning}
    for code, meaning in [
        (400, "invalid input; the message names the field"),
        (401, "no token, or an unknown one"),
        (403, "not allowed (a viewer token, a foreign Origin or Host, a bad signature)"),
        (404, "unknown camera"),
        (409, "already running, or MAX_CAMERAS reached"),
        (503, "MAX_CONCURRENT_STREAMS reached (see Retry-After)"),
    ]
}

_STATUS: list[tuple[type[CamgateError], int]] = [
    (InvalidInput, 400),
    (NotFound, 404),
    (AlreadyRunning, 409),
    (TooManyCameras, 409),
    (CapacityReached, 503),
    (StoreError, 500),
]


def error_response(
    status: int, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"success": False, "error": message}, status_code=status, headers=headers)


def error_body(message: str) -> bytes:
    """The bytes of `error_response`'s body, for answers sent below the web framework."""
    return bytes(JSONResponse({"success": False, "error": message}).body)


def describe_request_error(error: RequestValidationError) -> str:
    """'field: problem' for each invalid field; never echoes the input (it may hold a URL)."""
    parts = []
    items = error.errors()
    for item in items[:MAX_ERRORS_SHOWN]:
        loc = [str(p) for p in item.get("loc", ()) if p not in ("body", "query", "path")]
        if item.get("type") == "json_invalid":
            parts.append("request body is not valid JSON")
            continue
        field = shorten(".".join(loc) or "body", MAX_FIELD_CHARS)
        message = shorten(item.get("msg", "invalid").removeprefix("Value error, "), 200)
        if item.get("type") == "extra_forbidden":
            message = "unknown field"
        elif item.get("type") == "string_pattern_mismatch" and loc and loc[-1] in ID_FIELDS:
            message = CAMERA_ID_RULE
        parts.append(f"{field}: {message}")
    if len(items) > MAX_ERRORS_SHOWN:
        parts.append(f"and {len(items) - MAX_ERRORS_SHOWN} more problems")
    return "; ".join(parts) or "invalid request"


def shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(CamgateError)
    async def camgate_error(_: Request, error: CamgateError) -> JSONResponse:
        status = next((code for kind, code in _STATUS if isinstance(error, kind)), 500)
        headers = None
        if isinstance(error, CapacityReached):
            headers = {"Retry-After": str(error.retry_after_s)}
        if status >= 500:
            log.error("request failed: %s", error)
        return error_response(status, redact_text(str(error)), headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, error: RequestValidationError) -> JSONResponse:
        return error_response(400, describe_request_error(error))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        return error_response(error.status_code, str(error.detail), getattr(error, "headers", None))

    @app.exception_handler(Exception)
    async def internal_error(_: Request, error: Exception) -> JSONResponse:
        log.error("internal error: %s", redact_text(repr(error)))
        return error_response(500, "internal error")
