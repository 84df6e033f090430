"""Settings from the environment (and a `.env` file), validated once at start-up.

The seed's variable names are kept (FFMPEG_PATH, HLS_SEGMENT_TIME, ...). Nothing else in camgate
reads `os.environ`: the one `Settings` object is passed to whoever needs it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from camgate.errors import InvalidInput

LogLevel = Literal["debug", "info", "warning", "error"]


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
    default_video_bitrate: str = Field(
        "2000k", alias="DEFAULT_VIDEO_BITRATE", pattern=r"^\d+[kKmM]?$"
    )
    default_resolution: str | None = Field(
        None, alias="DEFAULT_RESOLUTION", pattern=r"^\d{2,5}x\d{2,5}$"
    )
    stop_timeout_s: float = Field(5.0, alias="STOP_TIMEOUT", gt=0, le=60)
    rtsp_timeout_s: float = Field(10.0, alias="RTSP_TIMEOUT", ge=1, le=120)
    stall_timeout_s: float = Field(15.0, alias="STALL_TIMEOUT", ge=2, le=600)
    restart_delay_min_s: float = Field(1.0, alias="RESTART_DELAY_MIN", gt=0, le=60)
    restart_delay_max_s: float = Field(30.0, alias="RESTART_DELAY_MAX", gt=0, le=3600)
    restart_max_attempts: int = Field(0, alias="RESTART_MAX_ATTEMPTS", ge=0)
    healthy_after_s: float = Field(30.0, alias="HEALTHY_AFTER", gt=0, le=3600)
    hls_block_timeout_s: float = Field(6.0, alias="HLS_BLOCK_TIMEOUT", ge=1, le=60)

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

    @field_validator("ffmpeg_path", "log_file", "config_file", "default_resolution", mode="before")
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


def load_settings(**overrides: Any) -> Settings:
    """Read and validate the settings; raise `InvalidInput` naming every bad variable."""
    try:
        return Settings(**overrides)
    except ValidationError as error:
        raise InvalidInput(describe_validation_error(error)) from None
