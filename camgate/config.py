"""Settings from the environment (and a `.env` file), validated once at start-up.

The seed's variable names are kept (FFMPEG_PATH, HLS_SEGMENT_TIME, ...). Nothing else in camgate
reads `os.environ`: the one `Settings` object is passed to whoever needs it. The camera file's
optional `settings:` section (read by `camgate.camera_file`) gives values under the same names;
the environment wins over it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from camgate.errors import InvalidInput

LogLevel = Literal["debug", "info", "warning", "error"]

# Encoding limits, shared by the DEFAULT_* settings and the per-camera overrides. ASCII digits
# only: Python's `\d` also matches other scripts' digits, which FFmpeg refuses.
# Bits per second as FFmpeg reads `-b:v`: k/K is 1000, M is 1000000 (a lower-case m would be
# milli); 16k to 100M is the range where x264's rate control works.
BITRATE_PATTERN = r"^[1-9][0-9]{0,8}[kKM]?$"
_BITRATE_UNITS = {"": 1, "k": 1000, "K": 1000, "M": 1_000_000}
MIN_VIDEO_BITRATE, MAX_VIDEO_BITRATE = 16_000, 100_000_000
# WIDTHxHEIGHT, both even (4:2:0 chroma), 16x16 to 7680x4320 (8K, x264 level 6.2).
RESOLUTION_PATTERN = r"^[1-9][0-9]{1,3}x[1-9][0-9]{1,3}$"
MAX_WIDTH, MAX_HEIGHT, MIN_SIDE = 7680, 4320, 16


def check_video_bitrate(value: str) -> str:
    """`value` if it is a bitrate camgate can give x264, else ValueError saying what is."""
    match = re.fullmatch(BITRATE_PATTERN, value)
    if match:
        digits, unit = value.rstrip("kKM"), value[len(value.rstrip("kKM")) :]
        if MIN_VIDEO_BITRATE <= int(digits) * _BITRATE_UNITS[unit] <= MAX_VIDEO_BITRATE:
            return value
    raise ValueError("must be bits per second from 16k to 100M: ASCII digits, then k or M")


def check_resolution(value: str) -> str:
    """`value` if it is WIDTHxHEIGHT within x264's limits, else ValueError saying what is."""
    if re.fullmatch(RESOLUTION_PATTERN, value):
        width, height = (int(side) for side in value.split("x"))
        if (
            MIN_SIDE <= width <= MAX_WIDTH
            and MIN_SIDE <= height <= MAX_HEIGHT
            and width % 2 == height % 2 == 0
        ):
            return value
    raise ValueError("must be WIDTHxHEIGHT in ASCII digits, both even, 16x16 to 7680x4320")


def parse_port_range(value: str) -> tuple[int, int] | None:
    """``LOW-HIGH`` (or one ``PORT``, as ``PORT-PORT``) as two UDP ports, None for an empty
    value, else ValueError saying why."""
    if not value.strip():
        return None
    match = re.fullmatch(r"\s*([0-9]{1,5})\s*(?:-\s*([0-9]{1,5})\s*)?", value)
    if match is None:
        raise ValueError(
            "must be one UDP port every WebRTC session shares (e.g. 8555) or a range "
            "LOW-HIGH with a port per session (e.g. 50000-50100)"
        )
    low = int(match[1])
    high = int(match[2]) if match[2] is not None else low
    if not 1024 <= low <= high <= 65535:
        raise ValueError("ports must be from 1024 to 65535, LOW <= HIGH")
    return low, high


class IceServer(BaseModel):
    """A STUN or TURN server for WebRTC, shaped like the browser's RTCIceServer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    urls: list[str] = Field(min_length=1)
    username: str | None = None
    credential: str | None = Field(None, repr=False)

    @field_validator("urls", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("urls")
    @classmethod
    def _ice_urls(cls, value: list[str]) -> list[str]:
        for url in value:
            if not url.startswith(("stun:", "stuns:", "turn:", "turns:")):
                raise ValueError("each URL must start with stun:, stuns:, turn: or turns:")
        return value


class Settings(BaseSettings):
    """Every tunable of a camgate process. Field aliases are the environment variable names."""

    model_config = SettingsConfigDict(
        env_file=".env", extra="ignore", populate_by_name=True, frozen=True
    )

    ffmpeg_path: str | None = Field(None, alias="FFMPEG_PATH")
    hls_segment_time_s: float = Field(2.0, alias="HLS_SEGMENT_TIME", ge=0.5, le=30)
    hls_part_time_s: float = Field(0.2, alias="HLS_PART_TIME", ge=0.05, le=2.0)
    hls_max_segments: int = Field(6, alias="HLS_MAX_SEGMENTS", ge=2, le=100)
    max_concurrent_streams: int = Field(16, alias="MAX_CONCURRENT_STREAMS", ge=1, le=1024)
    log_level: LogLevel = Field("info", alias="LOG_LEVEL")
    log_format: Literal["text", "json"] = Field("text", alias="LOG_FORMAT")
    log_file: Path | None = Field(None, alias="LOG_FILE")
    log_file_max_bytes: int = Field(10_000_000, alias="LOG_FILE_MAX_BYTES", ge=10_000)
    log_file_backups: int = Field(5, alias="LOG_FILE_BACKUPS", ge=0, le=100)
    data_dir: Path = Field(Path("./data"), alias="CAMGATE_DATA_DIR")
    config_file: Path | None = Field(None, alias="CAMGATE_CONFIG")
    host: str = Field("127.0.0.1", alias="CAMGATE_HOST", min_length=1)
    port: int = Field(8080, alias="CAMGATE_PORT", ge=1, le=65535)
    stream_cleanup_interval_s: float = Field(10.0, alias="STREAM_CLEANUP_INTERVAL", gt=0, le=3600)
    default_video_bitrate: str = Field("2000k", alias="DEFAULT_VIDEO_BITRATE")
    default_resolution: str | None = Field(None, alias="DEFAULT_RESOLUTION")
    stop_timeout_s: float = Field(5.0, alias="STOP_TIMEOUT", gt=0, le=60)
    rtsp_timeout_s: float = Field(10.0, alias="RTSP_TIMEOUT", ge=1, le=120)
    stall_timeout_s: float = Field(15.0, alias="STALL_TIMEOUT", ge=2, le=600)
    restart_delay_min_s: float = Field(1.0, alias="RESTART_DELAY_MIN", gt=0, le=60)
    restart_delay_max_s: float = Field(30.0, alias="RESTART_DELAY_MAX", gt=0, le=3600)
    restart_max_attempts: int = Field(0, alias="RESTART_MAX_ATTEMPTS", ge=0)
    healthy_after_s: float = Field(30.0, alias="HEALTHY_AFTER", gt=0, le=3600)
    hls_block_timeout_s: float = Field(6.0, alias="HLS_BLOCK_TIMEOUT", ge=1, le=60)
    max_cameras: int = Field(256, alias="MAX_CAMERAS", ge=1, le=100_000)
    on_demand_idle_s: float = Field(30.0, alias="ON_DEMAND_IDLE_S", ge=1, le=86400)
    on_demand_start_timeout_s: float = Field(15.0, alias="ON_DEMAND_START_TIMEOUT", ge=1, le=120)
    # MSE over WebSocket: the latest keyframe interval kept for joining viewers, and how far one
    # viewer may fall behind before it skips to the next keyframe (both should hold a GOP).
    mse_gop_max_bytes: int = Field(8_000_000, alias="MSE_GOP_MAX_BYTES", ge=65536, le=1 << 30)
    mse_client_queue_bytes: int = Field(
        8_000_000, alias="MSE_CLIENT_QUEUE_BYTES", ge=16384, le=1 << 30
    )
    # WebRTC (WHEP, see docs/webrtc.md): extra addresses announced as host candidates (a public
    # address in front of a 1:1 NAT), the UDP ports sessions bind (one port all share, or a
    # range with a port each; empty: ports the kernel picks), STUN/TURN servers as a JSON list
    # of RTCIceServer objects, and viewer limits.
    webrtc_address: str = Field("", alias="WEBRTC_ADDRESS")
    webrtc_ports: str = Field("", alias="WEBRTC_PORTS")
    webrtc_ice_servers: list[IceServer] = Field([], alias="WEBRTC_ICE_SERVERS")
    webrtc_max_viewers_per_camera: int = Field(
        50, alias="WEBRTC_MAX_VIEWERS_PER_CAMERA", ge=1, le=10_000
    )
    webrtc_max_viewers: int = Field(200, alias="WEBRTC_MAX_VIEWERS", ge=1, le=100_000)
    # Security (see SECURITY.md). Tokens: "admin:TOKEN", "viewer:TOKEN" or a bare admin TOKEN.
    api_tokens: str = Field("", alias="CAMGATE_API_TOKENS", repr=False)
    api_tokens_file: Path | None = Field(None, alias="CAMGATE_API_TOKENS_FILE")
    allow_insecure: bool = Field(False, alias="CAMGATE_ALLOW_INSECURE")
    allowed_hosts: str = Field("", alias="CAMGATE_ALLOWED_HOSTS")
    cors_origins: str = Field("", alias="CAMGATE_CORS_ORIGINS")
    viewer_secret: str = Field("", alias="CAMGATE_VIEWER_SECRET", repr=False)
    viewer_url_ttl_s: int = Field(3600, alias="CAMGATE_VIEWER_URL_TTL", ge=10, le=7 * 86400)
    max_body_bytes: int = Field(65536, alias="MAX_BODY_BYTES", ge=1024, le=16 * 1024 * 1024)
    max_connections: int = Field(1000, alias="MAX_CONNECTIONS", ge=8, le=100_000)
    keepalive_timeout_s: int = Field(5, alias="KEEPALIVE_TIMEOUT", ge=1, le=300)
    header_timeout_s: float = Field(10.0, alias="REQUEST_HEADER_TIMEOUT", ge=1, le=300)
    # Several nodes (see docs/cluster.md): PostgreSQL instead of SQLite, cameras held by leases.
    database_url: str = Field("", alias="CAMGATE_DATABASE_URL", repr=False)
    node_id: str = Field("", alias="CAMGATE_NODE_ID", max_length=128)
    advertise_url: str = Field("", alias="CAMGATE_ADVERTISE_URL")
    lease_ttl_s: float = Field(10.0, alias="CAMGATE_LEASE_TTL", ge=0.3, le=600)
    heartbeat_s: float = Field(2.0, alias="CAMGATE_HEARTBEAT", ge=0.1, le=120)
    rebalance_moves: int = Field(6, alias="CAMGATE_REBALANCE_MOVES", ge=0, le=10_000)
    rebalance_interval_s: float = Field(60.0, alias="CAMGATE_REBALANCE_INTERVAL", ge=1, le=3600)
    cluster_playback: Literal["redirect", "proxy"] = Field(
        "redirect", alias="CAMGATE_CLUSTER_PLAYBACK"
    )

    @field_validator("default_video_bitrate")
    @classmethod
    def _bitrate(cls, value: str) -> str:
        return check_video_bitrate(value)

    @field_validator("default_resolution")
    @classmethod
    def _resolution(cls, value: str | None) -> str | None:
        return None if value is None else check_resolution(value)

    @field_validator("webrtc_ports")
    @classmethod
    def _port_range(cls, value: str) -> str:
        parse_port_range(value)
        return value.strip()

    @property
    def webrtc_port_range(self) -> tuple[int, int] | None:
        return parse_port_range(self.webrtc_ports)

    @field_validator("advertise_url")
    @classmethod
    def _advertise_url(cls, value: str) -> str:
        # Redirects and relays append a request's path and query to it.
        if value and not re.fullmatch(r"https?://[^/\s?#@]+(/[^\s?#]*)?", value):
            raise ValueError("must be http:// or https://, a host and an optional path")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _normalise_level(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip().lower()
            return "warning" if value == "warn" else value
        return value

    @field_validator("log_format", mode="before")
    @classmethod
    def _normalise_format(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator(
        "ffmpeg_path",
        "log_file",
        "config_file",
        "default_resolution",
        "api_tokens_file",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value


def describe_validation_error(error: ValidationError) -> str:
    """One line per bad setting: the variable name, the value given and what is allowed."""
    lines = []
    for item in error.errors():
        name = ".".join(str(part) for part in item["loc"]) or "settings"
        given = item.get("input")
        shown = f"={given!r}" if isinstance(given, str | int | float) else ""
        lines.append(f"invalid setting {name}{shown}: {item['msg']}")
    return "; ".join(lines)


# The camera file is named by the environment, so it cannot name itself (or another file).
NOT_IN_FILE = frozenset({"CAMGATE_CONFIG"})


def setting_names() -> frozenset[str]:
    """Every setting's name (its environment variable), as the camera file's `settings:` uses."""
    names = (field.alias for field in Settings.model_fields.values() if field.alias)
    return frozenset(names) - NOT_IN_FILE


def file_setting_errors(values: Mapping[str, Any]) -> dict[str, str]:
    """What is wrong with each value the camera file gives, by setting name (empty: all good).

    The values are validated as given (passed in, they win over the environment here), so a
    bad value in the file is reported even where the environment would override it."""
    try:
        Settings(**values)
    except ValidationError as error:
        found: dict[str, str] = {}
        for item in error.errors():
            name = str(item["loc"][0]) if item["loc"] else ""
            if name in values:
                found.setdefault(name, str(item["msg"]).removeprefix("Value error, "))
        return found
    return {}


def load_settings(file_values: Mapping[str, Any] | None = None, **overrides: Any) -> Settings:
    """Read and validate the settings; raise `InvalidInput` naming every bad variable.

    Precedence: `overrides` (the command line), then the environment and `.env`, then
    `file_values` (the camera file's `settings:`, by variable name), then the defaults."""
    try:
        settings = Settings(**overrides)
        if not file_values:
            return settings
        names = {field.alias: name for name, field in Settings.model_fields.items()}
        given = settings.model_fields_set  # fields the environment or an override set
        from_file = {
            alias: value for alias, value in file_values.items() if names.get(alias) not in given
        }
        return Settings(**from_file, **overrides) if from_file else settings
    except ValidationError as error:
        raise InvalidInput(describe_validation_error(error)) from None
