"""Camera ids, RTSP URL validation and credential redaction."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from camgate.camera import (
    CameraSpec,
    Overrides,
    redact_text,
    redact_url,
    url_secrets,
    validate_camera_id,
    validate_rtsp_url,
)
from camgate.errors import InvalidInput


@pytest.mark.parametrize("camera_id", ["camera-1", "a", "Front.Door_2", "x" * 64])
def test_good_camera_ids_are_accepted(camera_id: str) -> None:
    assert validate_camera_id(camera_id) == camera_id


@pytest.mark.parametrize("camera_id", ["", "-lead", "has space", "slash/x", "x" * 65, "é"])
def test_bad_camera_ids_name_the_field(camera_id: str) -> None:
    with pytest.raises(InvalidInput, match="cameraId"):
        validate_camera_id(camera_id)


@pytest.mark.parametrize(
    "url",
    ["rtsp://10.0.0.5/stream", "rtsps://cam.local:322/a?b=c", "rtsp://u:p%40ss@[::1]:554/x"],
)
def test_good_urls_are_accepted(url: str) -> None:
    assert validate_rtsp_url(url) == url


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://cam/x", "scheme"),
        ("rtsp:///x", "host"),
        ("rtsp://cam:99999/x", "port"),
        ("rtsp://cam/a b", "whitespace"),
        ("rtsp://cam/a\nb", "control"),
        ("", "required"),
    ],
)
def test_bad_urls_say_what_is_wrong(url: str, problem: str) -> None:
    with pytest.raises(InvalidInput, match=problem):
        validate_rtsp_url(url)


def test_redact_url_hides_user_and_password() -> None:
    redacted = redact_url("rtsp://admin:s3cret@10.1.2.3:554/live")
    assert redacted == "rtsp://***:***@10.1.2.3:554/live"
    assert redact_url("rtsp://10.1.2.3/live") == "rtsp://10.1.2.3/live"


def test_redact_text_masks_urls_and_known_secrets() -> None:
    url = "rtsp://admin:p%40ssword@cam/x"
    text = f"[rtsp @ 0x1] method DESCRIBE failed for {url}; password p@ssword rejected"
    out = redact_text(text, url_secrets(url))
    assert "p%40ssword" not in out and "p@ssword" not in out
    assert "rtsp://***@cam/x" in out


def test_spec_repr_never_shows_the_password() -> None:
    spec = CameraSpec("cam", "rtsp://admin:hunter22@cam/x")
    assert "hunter22" not in repr(spec)
    assert spec.redacted_url == "rtsp://***:***@cam/x"


def test_overrides_decide_reencoding() -> None:
    assert not Overrides().reencode
    assert Overrides(videoBitrate="2000k").reencode
    assert Overrides(resolution="1280x720").reencode
    assert Overrides(videoCodec="h264").reencode
    assert not Overrides(audio="none").reencode


@pytest.mark.parametrize(
    "bad",
    [
        {"videoBitrate": "fast"},
        {"resolution": "1920*1080"},
        {"resolution": "1921x1080"},
        {"framerate": 0},
        {"colour": "red"},
    ],
)
def test_bad_overrides_are_rejected(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Overrides(**bad)
