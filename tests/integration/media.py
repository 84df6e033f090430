"""Checks on what camgate serves, done the way a user would: fetch it and ask ffprobe/ffmpeg."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from tests.support.server import CamgateServer, wait_for


def listed_seconds(playlist: str) -> float:
    """Media time of the complete segments a playlist lists."""
    return sum(float(value) for value in re.findall(r"#EXTINF:([0-9.]+),", playlist))


def wait_playlist(
    server: CamgateServer, camera_id: str, timeout_s: float = 30, min_listed_s: float = 0.0
) -> str:
    """The plain playlist once it lists a complete segment (and `min_listed_s` of media)."""

    def fetch() -> str | None:
        response = server.client.get(f"/hls/{camera_id}/index.m3u8", params={"ll": "0"})
        text = response.text if response.status_code == 200 else ""
        return text if "#EXTINF" in text and listed_seconds(text) >= min_listed_s else None

    return wait_for(fetch, timeout_s, f"a playable playlist for {camera_id}")


def first_segment_file(server: CamgateServer, camera_id: str, playlist: str, out: Path) -> Path:
    """Init segment + first complete media segment of the playlist, as one playable file."""
    init = re.search(r'#EXT-X-MAP:URI="([^"]+)"', playlist)
    segment = next(line for line in playlist.splitlines() if line and not line.startswith("#"))
    assert init is not None, playlist
    base = f"/hls/{camera_id}/"
    data = server.client.get(base + init.group(1)).content
    data += server.client.get(base + segment).content
    out.write_bytes(data)
    return out


def listed_segments_file(server: CamgateServer, camera_id: str, playlist: str, out: Path) -> Path:
    """Init segment + every complete segment the playlist lists, in order, as one file."""
    init = re.search(r'#EXT-X-MAP:URI="([^"]+)"', playlist)
    assert init is not None, playlist
    base = f"/hls/{camera_id}/"
    data = server.client.get(base + init.group(1)).content
    for line in playlist.splitlines():
        if line and not line.startswith("#"):
            data += server.client.get(base + line).content
    out.write_bytes(data)
    return out


def probe_streams(path: Path) -> list[dict[str, object]]:
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-of", "json", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    streams: list[dict[str, object]] = json.loads(result.stdout)["streams"]
    return streams


def decoded_frames(path: Path) -> int:
    """How many video frames ffmpeg decodes from the file without error."""
    result = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:v:0", "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    probe = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "csv=p=0",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return int(probe.stdout.strip().split(",")[0])


def decoded_video_frames(url: str, seconds: int) -> int:
    """Frames ffmpeg decodes from the first `seconds` of a live HLS URL (fails on an error)."""
    result = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-nostats", "-progress", "pipe:1",
         "-i", url, "-t", str(seconds), "-map", "0:v:0", "-f", "null", "-"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    frames = [line for line in result.stdout.splitlines() if line.startswith("frame=")]
    assert frames, result.stdout
    return int(frames[-1].removeprefix("frame="))
