"""A camera as the user declares it: id, RTSP URL (a secret), overrides; validation and redaction.

Nothing here starts processes or touches the network. A camera URL must never leave this module
unredacted except towards FFmpeg: use `redact_url` / `redact_text` for anything shown.

URL rule: the user name and password are RFC 3986 userinfo, so '@', '/', '?', '#', '%' and
other reserved characters in them must be percent-encoded ('@' as %40). A raw '@' is allowed
only once, just before the host; one anywhere else (a password with a raw '@', '/', '?' or
'#', or an '@' in the path or query, which must then be written %40) makes the URL ambiguous
and it is refused. Redaction relies on this: everything up to the last '@' is the userinfo.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import quote, unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from camgate.config import (
    BITRATE_PATTERN,
    RESOLUTION_PATTERN,
    check_resolution,
    check_video_bitrate,
)
from camgate.errors import InvalidInput

CAMERA_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_CAMERA_ID = re.compile(CAMERA_ID_PATTERN)
_CONTROL_OR_SPACE = re.compile(r"[\x00-\x20\x7f]")
# RFC 3986 3.2.1: userinfo = *( unreserved / pct-encoded / sub-delims / ":" )
_USERINFO = re.compile(r"(?:[A-Za-z0-9._~!$&'()*+,;=:-]|%[0-9A-Fa-f]{2})*")
_AUTHORITY_END = re.compile(r"[/?#]")
_WHITESPACE = re.compile(r"\s")
MAX_URL_LENGTH = 2048
# Shorter user names or passwords are not masked as bare words (every "ab" in a log would go).
MIN_SECRET_LENGTH = 3

_ENCODE_HINT = "('@' as %40, '/' as %2F, '?' as %3F, '#' as %23, '%' as %25)"


def validate_camera_id(camera_id: str) -> str:
    """Return the id if it is 1-64 letters, digits, '.', '_' or '-' (not starting with a symbol)."""
    if not isinstance(camera_id, str) or not _CAMERA_ID.match(camera_id):
        raise InvalidInput(
            "cameraId must be 1-64 characters of letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return camera_id


def validate_rtsp_url(url: str, field_name: str = "rtspUrl") -> str:
    """The URL with its scheme in lower case (FFmpeg knows only `rtsp`/`rtsps`), if it is valid:
    scheme rtsp/rtsps, a host, a valid port, unambiguous userinfo, no whitespace or controls."""
    if not isinstance(url, str):
        raise InvalidInput(f"{field_name} must be a string")
    if not url:
        raise InvalidInput(f"{field_name} is required")
    if len(url) > MAX_URL_LENGTH:
        raise InvalidInput(f"{field_name} is longer than {MAX_URL_LENGTH} characters")
    if _CONTROL_OR_SPACE.search(url):
        raise InvalidInput(f"{field_name} must not contain whitespace or control characters")
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in ("rtsp", "rtsps"):
        raise InvalidInput(f"{field_name} must use the rtsp:// or rtsps:// scheme")
    _check_userinfo(rest, field_name)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise InvalidInput(f"{field_name} is not a valid URL (bad host or port)") from None
    if not parts.hostname:
        raise InvalidInput(f"{field_name} must name a host")
    if port == 0:
        raise InvalidInput(f"{field_name} has an invalid port")
    return f"{scheme.lower()}://{rest}"


def _check_userinfo(after_scheme: str, field_name: str) -> None:
    """Refuse an '@' outside the authority and userinfo that is not RFC 3986 userinfo."""
    end = _AUTHORITY_END.search(after_scheme)
    authority = after_scheme[: end.start()] if end else after_scheme
    if end and "@" in after_scheme[end.start() :]:
        raise InvalidInput(
            f"{field_name} is ambiguous, it has an '@' after the host: percent-encode the "
            f"user name and password {_ENCODE_HINT}, and write an '@' of the path or query as %40"
        )
    userinfo = authority.rpartition("@")[0]
    if not _USERINFO.fullmatch(userinfo):
        raise InvalidInput(
            f"{field_name} has characters in its user name or password that must be "
            f"percent-encoded {_ENCODE_HINT}"
        )


def _split_userinfo(after_scheme: str) -> tuple[str, str] | None:
    """(userinfo, '@' and the rest) of the text after `scheme://`, or None without an '@'.

    The last '@' ends the userinfo: for a valid URL it is the only one; in free text this
    masks too much rather than too little when a password holds a raw '@', '/', '?' or '#'.
    """
    at = after_scheme.rfind("@")
    return (after_scheme[:at], after_scheme[at:]) if at >= 0 else None


def _masked(userinfo: str) -> str:
    return "***:***" if ":" in userinfo else "***"


def redact_url(url: str) -> str:
    """The URL with any user:password replaced by `***:***` (or `***` for a bare user)."""
    scheme, sep, rest = url.partition("://")
    split = _split_userinfo(rest)
    if split is None:
        return url
    return f"{scheme}{sep}{_masked(split[0])}{split[1]}" if sep else f"***{split[1]}"


def redact_text(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Mask the userinfo of every URL in free text, then every given secret string.

    A URL runs from its `scheme://` to the next whitespace; its userinfo, up to the last '@'
    in it, becomes `***`, whatever characters the password holds.
    """
    pieces: list[str] = []
    position = 0
    # Found by "://" (any scheme, or none): a regex for the scheme would be quadratic on a
    # long line of letters, and lines come from FFmpeg and from clients.
    while (separator := text.find("://", position)) >= 0:
        start = separator + 3
        space = _WHITESPACE.search(text, start)
        stop = space.start() if space else len(text)
        token = text[start:stop]
        split = _split_userinfo(token)
        pieces += [text[position:start], f"***{split[1]}" if split else token]
        position = stop
    pieces.append(text[position:])
    text = "".join(pieces)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def url_secrets(url: str) -> tuple[str, ...]:
    """The user name and password of a URL as written, percent-decoded and percent-encoded,
    and as HTTP Basic credentials, longest first, for `redact_text`."""
    _, sep, rest = url.partition("://")
    authority = _AUTHORITY_END.split(rest, 1)[0] if sep else ""
    split = _split_userinfo(authority)
    if split is None or not split[0]:
        return ()
    userinfo = split[0]
    user, _, password = userinfo.partition(":")
    found = {userinfo}
    for piece in (user, password):
        plain = unquote(piece)
        found.update({piece, plain, quote(plain, safe=""), quote(plain)})
    basic = f"{unquote(user)}:{unquote(password)}".encode()
    found.add(base64.b64encode(basic).decode("ascii"))
    return tuple(sorted((s for s in found if len(s) >= MIN_SECRET_LENGTH), key=len, reverse=True))


class Overrides(BaseModel):
    """Per-camera output options; any video option other than `copy` means re-encoding."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    videoBitrate: str | None = Field(None, json_schema_extra={"pattern": BITRATE_PATTERN})
    resolution: str | None = Field(None, json_schema_extra={"pattern": RESOLUTION_PATTERN})
    framerate: int | None = Field(None, ge=1, le=120, strict=True)
    videoCodec: Literal["copy", "h264"] | None = None
    audio: Literal["auto", "aac", "none"] | None = None

    @field_validator("videoBitrate")
    @classmethod
    def _bitrate(cls, value: str | None) -> str | None:
        return None if value is None else check_video_bitrate(value)

    @field_validator("resolution")
    @classmethod
    def _resolution(cls, value: str | None) -> str | None:
        return None if value is None else check_resolution(value)

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
    """What the user asked for one camera. `url` holds credentials: never log it.

    The URL is validated and kept with its scheme in lower case."""

    camera_id: str
    url: str
    overrides: Overrides = field(default_factory=Overrides)
    on_demand: bool = False  # pulled only while someone watches
    source: str = "api"  # "file" when declared in the camera file (CAMGATE_CONFIG)

    def __post_init__(self) -> None:
        validate_camera_id(self.camera_id)
        object.__setattr__(self, "url", validate_rtsp_url(self.url))

    @property
    def redacted_url(self) -> str:
        return redact_url(self.url)

    @property
    def secrets(self) -> tuple[str, ...]:
        return url_secrets(self.url)

    def __repr__(self) -> str:
        return f"CameraSpec(camera_id={self.camera_id!r}, url={self.redacted_url!r})"
