"""`camgate probe` reports: what the camera sends, what camgate does with it, advice."""

from __future__ import annotations

import json

from camgate.ffmpeg import MediaInfo
from camgate.probe_report import build_report, render_text

URL = "rtsp://***:***@10.0.0.5/live"


def test_h264_with_aac_needs_no_advice() -> None:
    report = build_report(MediaInfo("h264", 1280, 720, 25.0, "aac", 48000, "mono"), URL)
    text = render_text(report)
    assert "video   h264 1280x720 25 fps: copied as is" in text
    assert "audio   aac 48000 Hz: copied as is (AAC)" in text
    assert report.advice == [] and "advice" not in text


def test_h265_and_g711_get_advice_with_the_override_to_use() -> None:
    report = build_report(MediaInfo("hevc", 2560, 1440, 20.0, "pcm_alaw", 8000, "mono"), URL)
    text = render_text(report)
    assert '{"videoCodec": "h264"}' in text and "H.265" in text
    assert "G.711" in text and "converted to AAC" in text
    assert "sub-stream" in text  # larger than 1080p
    assert len(report.advice) == 3


def test_json_report_is_machine_readable_and_redacted() -> None:
    report = build_report(MediaInfo("h264", 640, 360, 25.0), URL)
    data = json.loads(json.dumps(report.as_json()))
    assert data["url"] == URL and data["audio"] is None
    assert data["videoHandling"].startswith("copied") and data["audioHandling"] == "no audio track"
    assert data["video"] == {"codec": "h264", "width": 640, "height": 360, "fps": 25.0}
