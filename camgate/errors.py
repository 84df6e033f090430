"""The error types the service raises; `camgate.api` maps each to one HTTP status.

Messages are shown to API users: they name the field or camera and never carry a camera URL.
"""

from __future__ import annotations


class CamgateError(Exception):
    """Base of every error camgate raises on purpose."""


class InvalidInput(CamgateError):
    """A request or setting is malformed or out of range (HTTP 400)."""


class NotFound(CamgateError):
    """The camera is not known (HTTP 404)."""


class AlreadyRunning(CamgateError):
    """A stream already runs for that camera (HTTP 409)."""


class CapacityReached(CamgateError):
    """MAX_CONCURRENT_STREAMS streams run already (HTTP 503)."""

    def __init__(self, message: str, retry_after_s: int = 30) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class TooManyCameras(CamgateError):
    """MAX_CAMERAS cameras exist already: a new one needs a delete first (HTTP 409)."""


class StoreError(CamgateError):
    """The desired-state store cannot be opened, read or written."""
