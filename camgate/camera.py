"""A camera as the user declares it: id, RTSP URL (a secret), overrides; validation and redaction.

Nothing here starts processes or touches the network. A camera URL must never leave this module
unredacted except as an FFmpeg argument: use `redact_url` / `redact_text` for anything shown.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from camgate.errors import InvalidInput

CAMERA_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_CAMERA_ID = re.compile(CAMERA_ID_PATTERN)
_CONTROL_OR_SPACE = re.compile(r"[\x00-\x20\x7f]")
_URL_CREDENTIALS = re.compile(r"(?i)\b(rtsps?|https?)://[^/\s@]*@")
MAX_URL_LENGTH = 2048


def validate_camera_id(camera_id: str) -> str:
    """Return the id if it is 1-64 letters, digits, '.', '_' or '-' (not starting with a symbol)."""
    if not isinstance(camera_id, str) or not _CAMERA_ID.match(camera_id):
        raise InvalidInput(
            "cameraId must be 1-64 characters of letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return camera_id


def validate_rtsp_url(url: str, field_name: str = "rtspUrl") -> str:
    """Check scheme rtsp/rtsps, a host, a valid port, no whitespace or control characters."""
    if not isinstance(url, str) or not url:
        raise InvalidInput(f"{field_name} is required")
    if len(url) > MAX_URL_LENGTH:
        raise InvalidInput(f"{field_name} is longer than {MAX_URL_LENGTH} characters")
    if _CONTROL_OR_SPACE.search(url):
        raise InvalidInput(f"{field_name} must not contain whitespace or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise InvalidInput(f"{field_name} is not a valid URL (bad host or port)") from None
    if parts.scheme.lower() not in ("rtsp", "rtsps"):
        raise InvalidInput(f"{field_name} must use the rtsp:// or rtsps:// scheme")
    if not parts.hostname:
        raise InvalidInput(f"{field_name} must name a host")
    if port == 0:
        raise InvalidInput(f"{field_name} has an invalid port")
    return url


def redact_url(url: str) -> str:
    """The URL with any user:password replaced by `***:***` (or `***` for a bare user)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_text(url)
    if "@" not in parts.netloc:
        return url
    userinfo, _, hostport = parts.netloc.rpartition("@")
    masked = "***:***" if ":" in userinfo else "***"
    return parts._replace(netloc=f"{masked}@{hostport}").geturl()


def redact_text(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Mask credentials in URLs inside free text, and every given secret string."""
    text = _URL_CREDENTIALS.sub(lambda m: f"{m.group(1)}://***@", text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def url_secrets(url: str) -> tuple[str, ...]:
    """The user name and password of a URL (raw and %-encoded forms), for `redact_text`."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return ()
    userinfo = parts.netloc.rpartition("@")[0]
    if not userinfo:
        return ()
    from urllib.parse import unquote

    found = {userinfo}
    for piece in userinfo.split(":", 1):
        if len(piece) >= 3:
            found.update({piece, unquote(piece)})
    return tuple(sorted(found, key=len, reverse=True))


class Overrides(BaseModel):
    """Per-camera output options; any video option other than `copy` means re-encoding."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    videoBitrate: str | None = Field(None, pattern=r"^[1-9]\d{0,5}[kKmM]?$")
    resolution: str | None = Field(None, pattern=r"^\d{2,5}x\d{2,5}$")
    framerate: int | None = Field(None, ge=1, le=120)
    videoCodec: Literal["copy", "h264"] | None = None
    audio: Literal["auto", "aac", "none"] | None = None

    @field_validator("resolution")
    @classmethod
    def _even_and_sane(cls, value: str | None) -> str | None:
        if value is None:
            return value
        width, height = (int(n) for n in value.split("x"))
        if not (16 <= width <= 7680 and 16 <= height <= 4320) or width % 2 or height % 2:
            raise ValueError("must be WIDTHxHEIGHT with even numbers, 16x16 to 7680x4320")
        return value

    @property
    def reencode(self) -> bool:
        """True when the options ask for re-encoding the video."""
        if self.videoCodec == "copy":
            return False
        return any((self.videoBitrate, self.resolution, self.framerate, self.videoCodec))

    def as_dict(self) -> dict[str, object]:
        return self.model_dump(exclude_none=True)


@dataclass(frozen=True)
class CameraSpec:
    """What the user asked for one camera. `url` holds credentials: never log it."""

    camera_id: str
    url: str
    overrides: Overrides = field(default_factory=Overrides)

    def __post_init__(self) -> None:
        validate_camera_id(self.camera_id)
        validate_rtsp_url(self.url)

    @property
    def redacted_url(self) -> str:
        return redact_url(self.url)

    @property
    def secrets(self) -> tuple[str, ...]:
        return url_secrets(self.url)

    def __repr__(self) -> str:
        return f"CameraSpec(camera_id={self.camera_id!r}, url={self.redacted_url!r})"
