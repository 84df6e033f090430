"""Cameras declared in YAML: good files load, bad ones name file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from camgate.camera_file import load_camera_file, load_settings_with_file, read_camera_file
from camgate.cli import _parser, _settings_from, main
from camgate.errors import InvalidInput


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cameras.yml"
    path.write_text(text)
    return path


def test_declared_cameras_load(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
cameras:
  front-door:
    url: rtsp://user:pw@192.168.1.20:554/s1
    overrides: {audio: none}
  garage:
    url: rtsp://192.168.1.21/s1
    enabled: false
""",
    )
    cameras = load_camera_file(path)
    assert [c.spec.camera_id for c in cameras] == ["front-door", "garage"]
    assert cameras[0].spec.overrides.audio == "none" and cameras[0].enabled
    assert cameras[1].enabled is False


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cameras:\n  a:\n    url: http://x/y\n", ":3: cameras.a.url: url must use the rtsp"),
        ("cameras:\n  a:\n    url: rtsp://x/y\n    colour: red\n", ":4: cameras.a.colour: unknown"),
        ("cameras:\n  a:\n    enabled: true\n", ":3: cameras.a.rtspUrl: required"),
        ("cameras:\n  'bad id':\n    url: rtsp://x/y\n", ":2: cameras.bad id: cameraId"),
        (
            "cameras:\n  a:\n    url: rtsp://x/y\n    overrides: {resolution: big}\n",
            ":4: cameras.a.overrides.resolution",
        ),
        ("cameras:\n  a: [1, 2\n", "not valid YAML"),
        ("streams: {}\n", ":1: streams: unknown field"),
        ("cameras:\n  a:\n    url: rtsp://x/y\n    enabled: maybe\n", "cameras.a.enabled"),
        (
            "cameras:\n  a:\n    url: rtsp://admin:Adm@1@x/y\n",
            ":3: cameras.a.url: url has characters in its user name or password that must be "
            "percent-encoded ('@' as %40",
        ),
        (
            "cameras:\n  a:\n    url: rtsp://x/y\n    overrides: {framerate: 500}\n",
            ":4: cameras.a.overrides.framerate: Input should be less than or equal to 120",
        ),
        (
            "cameras:\n  a:\n    url: rtsp://x/y\n    overrides: {videoBitrate: 999999M}\n",
            ":4: cameras.a.overrides.videoBitrate: must be bits per second from 16k to 100M",
        ),
    ],
)
def test_bad_files_name_file_line_and_field(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(InvalidInput) as error:
        load_camera_file(path)
    assert str(path) in str(error.value)
    assert expected in str(error.value)


def test_an_upper_case_scheme_is_kept_in_lower_case(tmp_path: Path) -> None:
    path = write(tmp_path, "cameras:\n  a:\n    url: RTSP://user:p%40ss@x/y\n")
    assert load_camera_file(path)[0].spec.url == "rtsp://user:p%40ss@x/y"


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="cannot read the camera file"):
        load_camera_file(tmp_path / "absent.yml")


def test_api_field_names_and_the_old_url_name(tmp_path: Path) -> None:
    path = tmp_path / "cameras.yml"
    path.write_text(
        "cameras:\n"
        "  a:\n    rtspUrl: rtsp://10.0.0.1/a\n    onDemand: true\n"
        "  b:\n    url: rtsp://10.0.0.2/b\n"
    )
    first, second = load_camera_file(path)
    assert (first.spec.url, first.spec.on_demand, first.spec.source) == (
        "rtsp://10.0.0.1/a",
        True,
        "file",
    )
    assert second.spec.url == "rtsp://10.0.0.2/b" and second.enabled
    path.write_text("cameras:\n  a:\n    rtspUrl: rtsp://10.0.0.1/a\n    url: rtsp://x/y\n")
    with pytest.raises(InvalidInput, match=":4: cameras.a: give rtspUrl or url, not both"):
        load_camera_file(path)


SETTINGS_FILE = """
settings:
  MAX_CONCURRENT_STREAMS: 4
  HLS_SEGMENT_TIME: 3
  LOG_LEVEL: warn
  WEBRTC_ICE_SERVERS:
    - urls: stun:stun.example.org:3478
cameras:
  door:
    rtspUrl: rtsp://192.168.1.20/s1
"""


def test_global_settings_come_from_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, SETTINGS_FILE)
    monkeypatch.chdir(tmp_path)  # no .env of the developer's
    monkeypatch.setenv("CAMGATE_CONFIG", str(path))
    for name in ("MAX_CONCURRENT_STREAMS", "HLS_SEGMENT_TIME", "LOG_LEVEL", "WEBRTC_ICE_SERVERS"):
        monkeypatch.delenv(name, raising=False)

    settings = load_settings_with_file()

    assert settings.max_concurrent_streams == 4
    assert settings.hls_segment_time_s == 3.0
    assert settings.log_level == "warning"
    assert [server.urls for server in settings.webrtc_ice_servers] == [
        ["stun:stun.example.org:3478"]
    ]
    assert [c.spec.camera_id for c in load_camera_file(path)] == ["door"]


def test_the_environment_and_the_command_line_win_over_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, SETTINGS_FILE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CAMGATE_CONFIG", str(path))
    monkeypatch.setenv("MAX_CONCURRENT_STREAMS", "9")
    monkeypatch.delenv("HLS_SEGMENT_TIME", raising=False)

    settings = load_settings_with_file(LOG_LEVEL="debug")

    assert settings.max_concurrent_streams == 9  # environment
    assert settings.log_level == "debug"  # command line
    assert settings.hls_segment_time_s == 3.0  # file, nobody else set it


def test_without_a_settings_section_nothing_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "cameras:\n  a:\n    url: rtsp://x/y\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CAMGATE_CONFIG", str(path))
    monkeypatch.delenv("MAX_CONCURRENT_STREAMS", raising=False)
    assert read_camera_file(path).settings == {}
    assert load_settings_with_file().max_concurrent_streams == 16


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "settings:\n  MAX_CONCURRENT_STREAMS: 0\n",
            ":2: settings.MAX_CONCURRENT_STREAMS: Input should be greater than or equal to 1",
        ),
        (
            "cameras: {}\nsettings:\n  LOG_LEVEL: loud\n",
            ":3: settings.LOG_LEVEL: Input should be 'debug', 'info', 'warning' or 'error'",
        ),
        (
            "settings:\n  DEFAULT_VIDEO_BITRATE: 2m\n",
            ":2: settings.DEFAULT_VIDEO_BITRATE: must be bits per second from 16k to 100M",
        ),
        ("settings:\n  max_streams: 3\n", ":2: settings.max_streams: unknown setting"),
        (
            "settings:\n  CAMGATE_CONFIG: other.yml\n",
            ":2: settings.CAMGATE_CONFIG: cannot be set in the camera file itself",
        ),
        ("settings: [1, 2]\n", ":1: settings: must be a mapping"),
        ("setting:\n  LOG_LEVEL: info\n", ":1: setting: unknown field (expected 'cameras' or"),
    ],
)
def test_invalid_settings_name_the_file_line_and_setting(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(InvalidInput) as caught:
        read_camera_file(path)
    assert f"{path}{expected}" in str(caught.value)
    with pytest.raises(InvalidInput):
        load_camera_file(path)  # a reload refuses the whole file too


def test_a_bad_value_in_the_file_is_refused_even_where_the_environment_overrides_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "settings:\n  CAMGATE_VIEWER_URL_TTL: 1\n")
    monkeypatch.setenv("CAMGATE_VIEWER_URL_TTL", "600")
    monkeypatch.setenv("CAMGATE_CONFIG", str(path))
    with pytest.raises(InvalidInput, match=r":2: settings.CAMGATE_VIEWER_URL_TTL"):
        load_settings_with_file()


def test_config_check_validates_and_lists_the_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = write(tmp_path, SETTINGS_FILE)
    assert main(["config", "check", str(good)]) == 0
    out = capsys.readouterr().out
    assert (
        "settings: HLS_SEGMENT_TIME, LOG_LEVEL, MAX_CONCURRENT_STREAMS, WEBRTC_ICE_SERVERS" in out
    )
    assert f"{good}: 1 cameras, valid" in out

    bad = tmp_path / "bad.yml"
    bad.write_text("settings:\n  LOG_FILE_BACKUPS: many\n  RTSP_TIMEOUT: 0\n")
    assert main(["config", "check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:2: settings.LOG_FILE_BACKUPS: Input should be a valid integer" in err


def test_camgate_serve_and_probe_read_the_settings_of_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, SETTINGS_FILE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CAMGATE_CONFIG", str(path))
    monkeypatch.delenv("MAX_CONCURRENT_STREAMS", raising=False)
    args = _parser().parse_args(["serve", "--port", "9123"])
    settings = _settings_from(args)
    assert settings.max_concurrent_streams == 4 and settings.port == 9123
