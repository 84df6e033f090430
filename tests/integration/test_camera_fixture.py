"""The synthetic RTSP camera behaves like a real one, as FFmpeg clients see it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

from tests.support.camera import (
    SYSTEM_PYTHON,
    CameraError,
    RtspCamera,
    SilentRtspServer,
    decode_timecode_luma,
    latency_ms,
)
from tests.support.ports import free_port
from tests.support.server import wait_for

pytestmark = pytest.mark.integration

FFMPEG = "/usr/bin/ffmpeg"
FFPROBE = "/usr/bin/ffprobe"
CLIENT_TIMEOUT_S = 20.0
WIDTH, HEIGHT = 640, 360
THUMB_WIDTH, THUMB_HEIGHT = 64, 36


@pytest.fixture
def start_camera() -> Iterator[Callable[..., RtspCamera]]:
    """Starts cameras on their own ports; every one is stopped at the end."""
    cameras: list[RtspCamera] = []

    def start(**options: Any) -> RtspCamera:
        camera = RtspCamera(port=free_port(), **options)
        cameras.append(camera)
        camera.start()
        return camera

    yield start
    for camera in cameras:
        camera.stop()


def ffprobe(url: str) -> subprocess.CompletedProcess[str]:
    argv = [FFPROBE, "-v", "error", "-rtsp_transport", "tcp", "-show_streams", "-of", "json", url]
    return subprocess.run(argv, capture_output=True, text=True, timeout=CLIENT_TIMEOUT_S)


def streams_by_type(url: str) -> dict[str, dict[str, Any]]:
    result = ffprobe(url)
    assert result.returncode == 0, result.stderr
    return {s["codec_type"]: s for s in json.loads(result.stdout)["streams"]}


def grab_gray_frames(url: str, count: int) -> bytes:
    """`count` decoded frames as full-size GRAY8, from a fresh client."""
    argv = [FFMPEG, "-v", "error", "-rtsp_transport", "tcp", "-i", url]
    argv += ["-frames:v", str(count), "-f", "rawvideo", "-pix_fmt", "gray", "-"]
    result = subprocess.run(argv, capture_output=True, timeout=CLIENT_TIMEOUT_S)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result.stdout


class FrameWatcher:
    """A long-lived FFmpeg client; records when each decoded (thumbnail) frame arrives."""

    def __init__(self, url: str) -> None:
        argv = [FFMPEG, "-v", "error", "-rtsp_transport", "tcp", "-i", url, "-an", "-threads", "1"]
        argv += ["-vf", f"scale={THUMB_WIDTH}:{THUMB_HEIGHT}", "-fps_mode", "passthrough"]
        argv += ["-f", "rawvideo", "-pix_fmt", "gray", "-"]
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.arrivals: list[float] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def wait_for_frames(self, count: int, timeout_s: float) -> bool:
        """Whether `count` frames in total have arrived before the deadline."""
        deadline = time.monotonic() + timeout_s
        while len(self.arrivals) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return len(self.arrivals) >= count

    def wait_until_quiet(self, quiet_s: float, timeout_s: float) -> None:
        """Wait until no frame has arrived for `quiet_s` (frames already in flight drain)."""
        wait_for(lambda: time.monotonic() - self.arrivals[-1] >= quiet_s, timeout_s, "quiet")

    def _read(self) -> None:
        assert self.process.stdout is not None
        frame_bytes = THUMB_WIDTH * THUMB_HEIGHT
        while len(self.process.stdout.read(frame_bytes)) == frame_bytes:
            self.arrivals.append(time.monotonic())

    def __enter__(self) -> FrameWatcher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.process.kill()
        self.process.wait()
        self._thread.join(timeout=5)


def test_ffprobe_sees_h264_640x360_video(start_camera: Callable[..., RtspCamera]) -> None:
    camera = start_camera()

    streams = streams_by_type(camera.url)

    assert set(streams) == {"video"}
    video = streams["video"]
    assert (video["codec_name"], video["width"], video["height"]) == ("h264", WIDTH, HEIGHT)


@pytest.mark.parametrize(
    ("audio", "codec_name"), [("aac", "aac"), ("pcma", "pcm_alaw"), ("pcmu", "pcm_mulaw")]
)
def test_ffprobe_sees_the_audio_track(
    start_camera: Callable[..., RtspCamera], audio: str, codec_name: str
) -> None:
    camera = start_camera(audio=audio)

    streams = streams_by_type(camera.url)

    assert streams["video"]["codec_name"] == "h264"
    assert streams["audio"]["codec_name"] == codec_name


def test_every_fresh_client_gets_decodable_video(start_camera: Callable[..., RtspCamera]) -> None:
    camera = start_camera(audio="aac")

    for _ in range(5):
        frames = grab_gray_frames(camera.url, count=10)

        assert len(frames) == 10 * WIDTH * HEIGHT


def test_timecode_carries_the_capture_wall_clock(start_camera: Callable[..., RtspCamera]) -> None:
    camera = start_camera(timecode=True)

    frame = grab_gray_frames(camera.url, count=1)
    now_ms = int(time.time() * 1000)

    latency = latency_ms(decode_timecode_luma(frame, WIDTH, HEIGHT), now_ms)
    assert 0 <= latency < 5000


def painted_timecode_frame(value: int) -> bytes:
    """A GRAY8 frame with the camera's timecode layout, as a decoder would receive it."""
    top, bottom = bytearray(), bytearray()
    for bit in range(32):
        one = (value >> (31 - bit)) & 1
        top += bytes([255 if one else 0]) * 20
        bottom += bytes([0 if one else 255]) * 20
    return bytes(top) * 40 + bytes(bottom) * 40 + bytes([128]) * (WIDTH * (HEIGHT - 80))


@pytest.mark.parametrize("value", [0, 1, 0x80000001, 2**32 - 1, 1_732_000_123])
def test_timecode_decoder_reads_every_bit(value: int) -> None:
    assert decode_timecode_luma(painted_timecode_frame(value), WIDTH, HEIGHT) == value


def test_timecode_decoder_rejects_a_frame_without_timecode() -> None:
    with pytest.raises(ValueError, match="no readable timecode"):
        decode_timecode_luma(bytes([128]) * (WIDTH * HEIGHT), WIDTH, HEIGHT)


def test_latency_spans_the_timecode_wrap() -> None:
    assert latency_ms(2**32 - 100, 2**33 + 50) == 150
    assert latency_ms(1_000, 2**32 + 1_250) == 250


def test_timecode_needs_a_frame_at_least_640_wide() -> None:
    camera = RtspCamera(port=free_port(), width=320, height=240, timecode=True)

    with pytest.raises(CameraError, match="640"):
        camera.start()


@pytest.mark.parametrize("auth", ["digest", "basic"])
def test_credentials_are_required_when_configured(
    start_camera: Callable[..., RtspCamera], auth: str
) -> None:
    camera = start_camera(user="viewer", password="s3cret:/@", auth=auth)

    anonymous = ffprobe(camera.url)
    wrong = ffprobe(camera.url_with_credentials("viewer", "wrong"))
    streams = streams_by_type(camera.url_with_credentials("viewer", "s3cret:/@"))

    assert anonymous.returncode != 0 and "401" in anonymous.stderr
    assert wrong.returncode != 0 and "401" in wrong.stderr
    assert streams["video"]["codec_name"] == "h264"


def test_paused_camera_sends_nothing_until_resumed(
    start_camera: Callable[..., RtspCamera],
) -> None:
    camera = start_camera(audio="pcma")
    with FrameWatcher(camera.url) as watcher:
        assert watcher.wait_for_frames(count=5, timeout_s=CLIENT_TIMEOUT_S)

        camera.pause()
        watcher.wait_until_quiet(quiet_s=0.5, timeout_s=5)
        frozen_count = len(watcher.arrivals)

        assert not watcher.wait_for_frames(count=frozen_count + 1, timeout_s=3)
        assert watcher.process.poll() is None, "the client stays connected to a frozen camera"

        camera.resume()

        assert watcher.wait_for_frames(count=frozen_count + 10, timeout_s=10)


def test_restart_serves_again_on_the_same_port(start_camera: Callable[..., RtspCamera]) -> None:
    camera = start_camera()
    port, first_pid = camera.port, camera.pid
    assert streams_by_type(camera.url)["video"]["codec_name"] == "h264"

    camera.restart()

    assert (camera.port, camera.url.endswith(f":{port}/cam")) == (port, True)
    assert camera.pid != first_pid
    assert streams_by_type(camera.url)["video"]["codec_name"] == "h264"


def x265enc_installed() -> bool:
    check = (
        "import gi; gi.require_version('Gst', '1.0'); from gi.repository import Gst; "
        "Gst.init(None); raise SystemExit(Gst.ElementFactory.find('x265enc') is None)"
    )
    return subprocess.run([SYSTEM_PYTHON, "-c", check], capture_output=True).returncode == 0


@pytest.mark.skipif(not x265enc_installed(), reason="GStreamer x265enc is not installed")
def test_h265_camera(start_camera: Callable[..., RtspCamera]) -> None:
    camera = start_camera(codec="h265")

    video = streams_by_type(camera.url)["video"]

    assert (video["codec_name"], video["width"], video["height"]) == ("hevc", WIDTH, HEIGHT)
    assert len(grab_gray_frames(camera.url, count=10)) == 10 * WIDTH * HEIGHT


def test_silent_server_accepts_but_never_answers() -> None:
    with SilentRtspServer() as silent:
        started = time.monotonic()
        argv = [FFPROBE, "-v", "error", "-rtsp_transport", "tcp", "-timeout", "1000000"]
        result = subprocess.run([*argv, silent.url], capture_output=True, timeout=CLIENT_TIMEOUT_S)

        assert result.returncode != 0
        assert time.monotonic() - started < CLIENT_TIMEOUT_S / 2


def test_camera_dies_with_a_killed_controller() -> None:
    controller = (
        "from tests.support.camera import RtspCamera\n"
        "camera = RtspCamera()\n"
        "camera.start()\n"
        "print(camera.pid, flush=True)\n"
        "import time; time.sleep(60)\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", controller], stdout=subprocess.PIPE, text=True, cwd=_repo_root()
    )
    try:
        assert process.stdout is not None
        camera_pid = int(process.stdout.readline())
        process.send_signal(signal.SIGKILL)
        process.wait()

        wait_for(lambda: not _alive(camera_pid), 10, "the orphaned camera to exit")
    finally:
        process.kill()
        process.wait()


def _repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
