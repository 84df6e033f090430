"""What `camgate probe URL` tells a user about a camera: what it sends, what camgate will do
with it, and advice. Pure: from `MediaInfo` to a report, to text or JSON."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from camgate.ffmpeg import BROWSER_AUDIO, MediaInfo

G711 = {"pcm_alaw", "pcm_mulaw"}
LARGE_PIXELS = 1920 * 1080


@dataclass(frozen=True)
class ProbeReport:
    url: str  # redacted
    video: dict[str, Any] | None
    audio: dict[str, Any] | None
    video_handling: str
    audio_handling: str
    advice: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["videoHandling"] = data.pop("video_handling")
        data["audioHandling"] = data.pop("audio_handling")
        return data


def build_report(info: MediaInfo, redacted_url: str) -> ProbeReport:
    video = {"codec": info.video_codec, "width": info.width, "height": info.height, "fps": info.fps}
    audio = (
        {
            "codec": info.audio_codec,
            "sampleRate": info.audio_rate_hz,
            "channels": info.audio_channels,
        }
        if info.audio_codec
        else None
    )
    advice: list[str] = []
    video_handling = "copied as is (no re-encoding)"
    if info.video_codec == "hevc":
        video_handling = "copied as is: H.265 plays only in Safari and some Chromium builds"
        advice.append(
            "H.265 video: browsers without H.265 show a black tile. Either switch the camera to "
            'H.264, or set the override {"videoCodec": "h264"} to convert it (x264 ultrafast, '
            "about 13 % of a core for 720p)."
        )
    elif info.video_codec not in ("h264", None):
        advice.append(
            f"{info.video_codec} video does not play in browsers: set the override "
            '{"videoCodec": "h264"} to convert it.'
        )
    if info.width and info.height and info.width * info.height > LARGE_PIXELS:
        advice.append(
            f"{info.width}x{info.height} is larger than 1080p: for dashboards of many cameras, "
            "the camera's sub-stream (often .../stream2 or channel=2) costs viewers far less."
        )
    if info.audio_codec is None:
        audio_handling = "no audio track"
    elif info.audio_codec in BROWSER_AUDIO:
        audio_handling = "copied as is (AAC)"
    elif info.audio_codec in G711:
        audio_handling = "converted to AAC for browsers (about 1 % of a core)"
        advice.append(
            "G.711 audio is converted to AAC so browsers can play it; set the override "
            '{"audio": "none"} if you do not need sound.'
        )
    else:
        audio_handling = "converted to AAC for browsers"
    return ProbeReport(redacted_url, video, audio, video_handling, audio_handling, advice)


def render_text(report: ProbeReport) -> str:
    lines = [f"camera  {report.url}"]
    video = report.video or {}
    parts = [str(video.get("codec") or "?")]
    if video.get("width") and video.get("height"):
        parts.append(f"{video['width']}x{video['height']}")
    if video.get("fps"):
        parts.append(f"{video['fps']:g} fps")
    lines.append(f"video   {' '.join(parts)}: {report.video_handling}")
    if report.audio:
        rate = report.audio.get("sampleRate")
        detail = f"{report.audio['codec']}" + (f" {rate} Hz" if rate else "")
        lines.append(f"audio   {detail}: {report.audio_handling}")
    else:
        lines.append(f"audio   {report.audio_handling}")
    if report.advice:
        lines.append("advice")
        lines.extend(f"  - {item}" for item in report.advice)
    return "\n".join(lines)
