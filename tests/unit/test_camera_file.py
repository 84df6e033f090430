"""Cameras declared in YAML: good files load, bad ones name file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from camgate.camera_file import load_camera_file
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
