"""Camera ids, RTSP URL validation, credential redaction and override limits."""

from __future__ import annotations

import time
from urllib.parse import quote

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
from camgate.config import Settings
from camgate.errors import InvalidInput

# One password per character that URL parsers treat specially.
PASSWORDS = {
    "@": "Adm@123",
    ":": "pa:ss:wd",
    "/": "pa/ss/wd",
    "#": "pa#ss#wd",
    "?": "pa?ss?wd",
    "%": "50%off%",
}


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


# ----- ambiguous userinfo ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "url",
    [
        "rtsp://admin:Adm@123@10.0.0.5/live",
        "rtsp://admin:pa/ss@host/x",
        "rtsp://admin:1234/ss@host/x",
        "rtsp://admin:pa#ss@host/",
        "rtsp://admin:pa?ss@host/",
        "rtsp://admin:50%off@host/",
        "rtsp://admin:p[x@host/",
        "rtsp://user@name:pw@host/",
    ],
)
def test_ambiguous_credentials_are_refused_with_a_percent_encoding_hint(url: str) -> None:
    with pytest.raises(InvalidInput) as error:
        validate_rtsp_url(url)
    message = str(error.value)
    assert message.startswith("rtspUrl ") and "percent-encode" in message and "%40" in message
    assert "admin" not in message and "host/" not in message and "10.0.0.5" not in message


@pytest.mark.parametrize("url", ["rtsp://host/path@x", "rtsp://host/s?user=a@b"])
def test_an_at_sign_after_the_host_must_be_percent_encoded_too(url: str) -> None:
    with pytest.raises(InvalidInput, match="write an '@' of the path or query as %40"):
        validate_rtsp_url(url)
    assert validate_rtsp_url(url.replace("@", "%40")) == url.replace("@", "%40")


@pytest.mark.parametrize("char", sorted(PASSWORDS))
def test_percent_encoded_passwords_are_accepted_as_written(char: str) -> None:
    url = f"rtsp://admin:{quote(PASSWORDS[char], safe='')}@10.0.0.5:554/live"
    assert validate_rtsp_url(url) == url


def test_a_raw_colon_in_the_password_is_unambiguous() -> None:
    url = "rtsp://admin:pa:ss@10.0.0.5/live"
    assert validate_rtsp_url(url) == url
    assert redact_url(url) == "rtsp://***:***@10.0.0.5/live"


@pytest.mark.parametrize("scheme", ["RTSP", "Rtsp", "RTSPS", "Rtsps"])
def test_the_scheme_is_case_insensitive_and_kept_in_lower_case(scheme: str) -> None:
    # FFmpeg answers "Protocol not found" for an upper-case scheme.
    spec = CameraSpec("cam", f"{scheme}://admin:pw@cam/x")
    assert spec.url == f"{scheme.lower()}://admin:pw@cam/x"


# ----- redaction of every special character ----------------------------------------------------
@pytest.mark.parametrize("char", sorted(PASSWORDS))
def test_redact_text_masks_a_raw_password_in_free_text(char: str) -> None:
    password = PASSWORDS[char]
    text = f"[rtsp @ 0x55d] rtsp://admin:{password}@10.0.0.5:554/live: 401 Unauthorized"
    out = redact_text(text)
    assert out == "[rtsp @ 0x55d] rtsp://***@10.0.0.5:554/live: 401 Unauthorized"


@pytest.mark.parametrize("char", sorted(PASSWORDS))
def test_redact_url_masks_a_raw_password(char: str) -> None:
    url = f"rtsp://admin:{PASSWORDS[char]}@10.0.0.5/live"
    assert redact_url(url) == "rtsp://***:***@10.0.0.5/live"


@pytest.mark.parametrize("char", sorted(PASSWORDS))
def test_every_form_of_an_encoded_password_is_masked(char: str) -> None:
    password = PASSWORDS[char]
    spec = CameraSpec("cam", f"rtsp://admin:{quote(password, safe='')}@10.0.0.5/live")
    text = (
        f"Traceback: ConnectionError({spec.url!r}) after url={spec.url}, "
        f"password {password!r}, encoded {quote(password, safe='')}, as {quote(password)}"
    )
    out = redact_text(text, spec.secrets)
    assert password not in out and quote(password, safe="") not in out
    assert quote(password) not in out and "10.0.0.5/live" in out
    assert redact_url(spec.url) == "rtsp://***:***@10.0.0.5/live"


def test_several_urls_on_one_line_are_all_masked() -> None:
    text = "a=rtsp://u1:p1@h1/x,b=rtsps://u2:p@2@h2/y\nhttp://plain.host/z"
    out = redact_text(text)
    assert "u1" not in out and "p1" not in out and "u2" not in out and "p@2" not in out
    assert out.endswith("@h2/y\nhttp://plain.host/z")


def test_redaction_takes_linear_time_on_a_long_line() -> None:
    line = "a" * 65536  # FFmpeg stderr lines are read up to 64 KiB
    started = time.perf_counter()
    assert redact_text(line, ("secret",)) == line
    assert redact_text(f"rtsp://{line}@host/x") == "rtsp://***@host/x"
    assert time.perf_counter() - started < 0.5


def test_secrets_include_http_basic_credentials() -> None:
    spec = CameraSpec("cam", "rtsp://admin:p%40ss@cam/x")
    assert "YWRtaW46cEBzcw==" in spec.secrets  # base64("admin:p@ss")
    assert "p@ss" not in redact_text("Authorization: Basic YWRtaW46cEBzcw== p@ss", spec.secrets)


# ----- override values -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("resolution", "٣٢٠x٢٤٠"),
        ("resolution", "0640x0360"),
        ("resolution", "7682x4320"),
        ("resolution", "16x4322"),
        ("resolution", "14x14"),
        ("videoBitrate", "٢٠٠٠k"),
        ("videoBitrate", "999999M"),
        ("videoBitrate", "101M"),
        ("videoBitrate", "15k"),
        ("videoBitrate", "15999"),
        ("videoBitrate", "2m"),
        ("videoBitrate", "2000k\n"),
        ("framerate", 121),
        ("framerate", 500),
        ("framerate", "30"),
        ("framerate", True),
        ("framerate", 29.97),
    ],
)
def test_overrides_outside_what_x264_accepts_name_the_field(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as error:
        Overrides.model_validate({field: value})
    assert error.value.errors()[0]["loc"] == (field,)


@pytest.mark.parametrize(
    "good",
    [
        {"videoBitrate": "16k"},
        {"videoBitrate": "2000K"},
        {"videoBitrate": "100M"},
        {"videoBitrate": "16000"},
        {"videoBitrate": "100000000"},
        {"resolution": "16x16"},
        {"resolution": "7680x4320"},
        {"resolution": "1920x1080"},
        {"framerate": 1},
        {"framerate": 120},
    ],
)
def test_overrides_within_the_limits_are_accepted(good: dict[str, object]) -> None:
    assert Overrides.model_validate(good).as_dict() == good


def accepted(**override: object) -> bool:
    try:
        Overrides.model_validate(override)
    except ValidationError:
        return False
    return True


def test_the_resolution_rule_is_exactly_even_16x16_to_7680x4320() -> None:
    for n in range(1, 10000):
        assert accepted(resolution=f"{n}x16") == (16 <= n <= 7680 and n % 2 == 0), n
        assert accepted(resolution=f"16x{n}") == (16 <= n <= 4320 and n % 2 == 0), n
    for value in ["0016x16", "16x16 ", "x16", "16x٣٢", "16X16"]:
        assert not accepted(resolution=value), value


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("16000", True),
        ("15999", False),
        ("100000000", True),
        ("100000001", False),
        ("16k", True),
        ("15k", False),
        ("100000k", True),
        ("100001k", False),
        ("1M", True),
        ("100M", True),
        ("101M", False),
        ("999999M", False),
        ("2m", False),
        ("016k", False),
        ("2000K", True),
        ("٢٠٠٠k", False),
        ("1.5M", False),
    ],
)
def test_the_bitrate_rule_is_exactly_16k_to_100m(value: str, ok: bool) -> None:
    assert accepted(videoBitrate=value) == ok


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        *(
            ("DEFAULT_VIDEO_BITRATE", value)
            for value in ["2000k", "16k", "100M", "999999M", "٢٠٠٠k", "2m", "15k", "1500000"]
        ),
        *(
            ("DEFAULT_RESOLUTION", value)
            for value in ["1280x720", "٣٢٠x٢٤٠", "7682x4320", "1281x720", "16x16"]
        ),
    ],
)
def test_default_settings_follow_the_override_rules(setting: str, value: str) -> None:
    field = {"DEFAULT_VIDEO_BITRATE": "videoBitrate", "DEFAULT_RESOLUTION": "resolution"}[setting]
    try:
        Settings(**{setting: value})
        setting_ok = True
    except ValidationError:
        setting_ok = False
    assert setting_ok == accepted(**{field: value})
