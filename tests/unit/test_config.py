"""Settings: seed names and defaults, normalisation, one clear error per bad variable."""

from __future__ import annotations

import pytest

from camgate.config import load_settings
from camgate.errors import InvalidInput


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name in (
        "FFMPEG_PATH",
        "HLS_SEGMENT_TIME",
        "HLS_MAX_SEGMENTS",
        "MAX_CONCURRENT_STREAMS",
        "LOG_LEVEL",
        "CAMGATE_DATA_DIR",
        "HLS_PART_TIME",
        "WEBRTC_PORTS",
    ):
        monkeypatch.delenv(name, raising=False)


def test_defaults() -> None:
    settings = load_settings()
    assert settings.hls_max_segments == 6
    assert settings.max_concurrent_streams == 16
    assert settings.log_level == "info"
    assert settings.ffmpeg_path is None
    assert str(settings.data_dir) == "data"
    assert (settings.host, settings.port) == ("127.0.0.1", 8080)


def test_seed_variable_names_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HLS_SEGMENT_TIME", "4")
    monkeypatch.setenv("HLS_MAX_SEGMENTS", "8")
    monkeypatch.setenv("MAX_CONCURRENT_STREAMS", "3")
    monkeypatch.setenv("LOG_LEVEL", "WARN")
    monkeypatch.setenv("FFMPEG_PATH", "/opt/ffmpeg")
    settings = load_settings()
    assert settings.hls_segment_time_s == 4
    assert settings.hls_max_segments == 8
    assert settings.max_concurrent_streams == 3
    assert settings.log_level == "warning"
    assert settings.ffmpeg_path == "/opt/ffmpeg"


def test_env_file_is_read(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / ".env").write_text("MAX_CONCURRENT_STREAMS=5\n")
    assert load_settings().max_concurrent_streams == 5


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("HLS_SEGMENT_TIME", "abc"),
        ("HLS_SEGMENT_TIME", "0"),
        ("MAX_CONCURRENT_STREAMS", "-1"),
        ("LOG_LEVEL", "loud"),
        ("HLS_MAX_SEGMENTS", "1"),
        ("HLS_PART_TIME", "5"),
        ("WEBRTC_PORTS", "8555,8556"),
        ("WEBRTC_PORTS", "50100-50000"),
        ("WEBRTC_PORTS", "80-90"),
        ("WEBRTC_PORTS", "50000-70000"),
        ("WEBRTC_PORTS", "5e4-5e5"),
    ],
)
def test_invalid_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(InvalidInput) as error:
        load_settings()
    message = str(error.value)
    assert name in message and repr(value) in message
    assert "\n" not in message


def test_the_webrtc_port_range_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().webrtc_port_range is None  # any port the kernel picks
    monkeypatch.setenv("WEBRTC_PORTS", " 50000 - 50100 ")
    assert load_settings().webrtc_port_range == (50000, 50100)
    monkeypatch.setenv("WEBRTC_PORTS", "8555")  # one port, shared by every session
    assert load_settings().webrtc_port_range == (8555, 8555)
