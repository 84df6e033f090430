"""LL-HLS as players see it, from a real test camera through a real camgate server.

The tests that only read share one camera and server streaming it (``ll_server``); those that
restart things start their own. Each reads what camgate serves the way a client would: the playlist parsed with ``m3u8``, blocking reloads timed from outside, the stream fed to
Debian's ffmpeg/ffprobe. The rules checked are the ones players rely on (RFC 8216bis and
docs/llhls.md).
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import m3u8
import pytest

from tests.integration.media import (
    decoded_video_frames,
    first_segment_file,
    probe_streams,
    wait_playlist,
)
from tests.support.camera import RtspCamera
from tests.support.ports import free_port
from tests.support.server import CamgateServer, wait_for

pytestmark = pytest.mark.integration

CAMERA_ID = "ll-cam"
PLAYLIST = f"/hls/{CAMERA_ID}/index.m3u8"
BLOCK_TIMEOUT_S = 4.0  # HLS_BLOCK_TIMEOUT for these servers
MIN_BLOCK_WAIT_S = 0.05
FAR_AHEAD_MSN = 10
DECODE_S = 4
FPS = 25
QUICK_RECOVERY_ENV = {"RESTART_DELAY_MIN": "0.5", "STALL_TIMEOUT": "5"}
RECOVERY_TIMEOUT_S = 45.0
POLL_INTERVAL_S = 0.1


# ----- reading playlists --------------------------------------------------------------------


@dataclass(frozen=True)
class ListedPart:
    msn: int
    part_no: int
    uri: str
    duration_s: float
    independent: bool


def parse(text: str) -> m3u8.M3U8:
    return m3u8.loads(text)


def listed_parts(playlist: m3u8.M3U8) -> list[ListedPart]:
    """Every EXT-X-PART with its (msn, part number); the open segment is the last one listed."""
    found = []
    for offset, segment in enumerate(playlist.segments):
        for part_no, part in enumerate(segment.parts):
            found.append(
                ListedPart(
                    msn=playlist.media_sequence + offset,
                    part_no=part_no,
                    uri=part.uri,
                    duration_s=float(part.duration),
                    independent=part.independent == "YES",
                )
            )
    return found


def complete_segments(playlist: m3u8.M3U8) -> list[m3u8.Segment]:
    return [segment for segment in playlist.segments if segment.uri]


def last_msn(playlist: m3u8.M3U8) -> int:
    return playlist.media_sequence + len(playlist.segments) - 1


def hinted_position(playlist: m3u8.M3U8) -> tuple[int, int]:
    """(msn, part) of the part the preload hint names, as a client asks for it next."""
    last = playlist.segments[-1]
    if last.uri:  # the last segment is complete: the next part opens a new one
        return last_msn(playlist) + 1, 0
    return last_msn(playlist), len(last.parts)


def fetch_ll(server: CamgateServer, **params: Any) -> tuple[httpx.Response, float]:
    """The LL playlist response and how long it took to come."""
    started = time.monotonic()
    response = server.client.get(PLAYLIST, params=params)
    return response, time.monotonic() - started


def wait_ll_playlist(server: CamgateServer, min_segments: int = 1) -> m3u8.M3U8:
    """The LL playlist once it lists `min_segments` complete segments."""

    def ready() -> m3u8.M3U8 | None:
        response = server.client.get(PLAYLIST)
        if response.status_code != 200:
            return None
        playlist = parse(response.text)
        return playlist if len(complete_segments(playlist)) >= min_segments else None

    return wait_for(ready, 40, f"an LL playlist with {min_segments} complete segment(s)")


def start_stream(server: CamgateServer, camera: RtspCamera) -> None:
    reply = server.service(cameraId=CAMERA_ID, rtspUrl=camera.url, action="start")
    assert reply.status_code == 200, reply.text


@pytest.fixture(scope="module")
def ll_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CamgateServer]:
    """A server streaming a 2 s GOP camera as CAMERA_ID, shared by the tests that only read."""
    data = tmp_path_factory.mktemp("ll") / "data"
    env = {"HLS_BLOCK_TIMEOUT": str(BLOCK_TIMEOUT_S)}
    with (
        RtspCamera(port=free_port(), gop_s=2.0) as camera,
        CamgateServer(free_port(), data, env) as server,
    ):
        start_stream(server, camera)
        yield server


# ----- 1. the playlist follows the rules players rely on -------------------------------------


def test_ll_playlist_declares_and_follows_the_low_latency_rules(ll_server: CamgateServer) -> None:
    playlist = wait_ll_playlist(ll_server, min_segments=2)
    text = playlist.dumps()
    parts = listed_parts(playlist)

    # RFC 8216bis 8: EXT-X-PART, PART-INF, SERVER-CONTROL and PRELOAD-HINT need version 9.
    assert playlist.version is not None and playlist.version >= 9, text
    assert playlist.part_inf is not None and playlist.part_inf.part_target, text
    part_target_s = float(playlist.part_inf.part_target)
    assert parts, text
    # RFC 8216bis 4.4.4.9: no part may be longer than PART-TARGET.
    assert max(part.duration_s for part in parts) <= part_target_s, text
    # hls.js starts only at an INDEPENDENT part (docs/llhls.md); with a 2 s GOP every keyframe
    # starts a segment, so an INDEPENDENT part is always its segment's first.
    assert any(part.independent for part in parts), text
    assert all(part.part_no == 0 for part in parts if part.independent), text
    assert playlist.preload_hint is not None, text
    assert playlist.preload_hint.hint_type == "PART", text
    assert playlist.preload_hint.uri not in {part.uri for part in parts}, text
    assert playlist.server_control is not None, text
    assert playlist.server_control.can_block_reload == "YES", text
    # RFC 8216bis 4.4.3.8: PART-HOLD-BACK is at least twice PART-TARGET.
    assert float(playlist.server_control.part_hold_back) >= 2 * part_target_s, text
    # RFC 8216bis 4.4.3.1: each EXTINF rounded to the nearest integer fits TARGETDURATION.
    for segment in complete_segments(playlist):
        assert round(segment.duration) <= playlist.target_duration, text


# ----- 2. blocking playlist reload and the preload hint --------------------------------------


def test_blocking_reload_returns_once_the_requested_part_exists(ll_server: CamgateServer) -> None:
    playlist = wait_ll_playlist(ll_server)

    # Sync to a part boundary first: this request returns right as the hinted part completes,
    # so the next one has to wait for about a whole part.
    msn, part = hinted_position(playlist)
    response, _ = fetch_ll(ll_server, _HLS_msn=msn, _HLS_part=part)
    assert response.status_code == 200, response.text
    synced = parse(response.text)
    assert playlist.preload_hint.uri in {p.uri for p in listed_parts(synced)}, response.text

    msn, part = hinted_position(synced)
    awaited_uri = synced.preload_hint.uri
    assert awaited_uri not in {p.uri for p in listed_parts(synced)}, response.text
    response, waited_s = fetch_ll(ll_server, _HLS_msn=msn, _HLS_part=part)

    assert response.status_code == 200, (response.status_code, response.text)
    assert MIN_BLOCK_WAIT_S < waited_s < BLOCK_TIMEOUT_S, waited_s
    answered = {p.uri: p for p in listed_parts(parse(response.text))}
    assert awaited_uri in answered, response.text
    # A part at (msn, last + 1) is answered by the next segment's part 0: pairs compare in order.
    awaited = answered[awaited_uri]
    assert (awaited.msn, awaited.part_no) >= (msn, part), response.text


def test_blocking_reload_far_ahead_of_the_live_edge_is_a_bad_request(
    ll_server: CamgateServer,
) -> None:
    playlist = wait_ll_playlist(ll_server)

    response, waited_s = fetch_ll(ll_server, _HLS_msn=last_msn(playlist) + FAR_AHEAD_MSN)

    # RFC 8216bis 6.2.5.2: more than two segments ahead of the last one is a 400, at once.
    assert response.status_code == 400, response.text
    assert response.json()["success"] is False
    assert waited_s < 1.0, waited_s


def test_preload_hinted_part_is_served_once_complete(ll_server: CamgateServer) -> None:
    playlist = wait_ll_playlist(ll_server)
    hint_uri = playlist.preload_hint.uri
    assert hint_uri not in {part.uri for part in listed_parts(playlist)}

    early = ll_server.client.get(f"/hls/{CAMERA_ID}/{hint_uri}")

    assert early.status_code == 200, early.text
    assert early.headers["content-type"].startswith("video/mp4")
    assert early.content[4:8] == b"moof", early.content[:16]  # a part is moof+mdat pairs
    later = parse(ll_server.client.get(PLAYLIST).text)
    assert hint_uri in {part.uri for part in listed_parts(later)}
    assert ll_server.client.get(f"/hls/{CAMERA_ID}/{hint_uri}").content == early.content


# ----- 3. a standard client decodes both playlists -------------------------------------------


def probe_url(url: str) -> list[dict[str, Any]]:
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-of", "json", url],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    streams: list[dict[str, Any]] = json.loads(result.stdout)["streams"]
    return streams


@pytest.mark.parametrize("query", ["", "?ll=0"], ids=["ll", "plain"])
def test_ffmpeg_decodes_the_live_playlist(ll_server: CamgateServer, query: str) -> None:
    # FFmpeg starts three complete segments from the end. Among a stream's first three segments
    # (the one-part lead-in, then the rest of the first GOP) that may be one without a keyframe,
    # and FFmpeg would skip frames until the next one (docs/llhls.md): judge a steady stream.
    wait_ll_playlist(ll_server, min_segments=6)
    url = f"{ll_server.base_url}{PLAYLIST}{query}"

    frames = decoded_video_frames(url, DECODE_S)
    video = [s for s in probe_url(url) if s["codec_type"] == "video"]

    assert frames >= 0.9 * DECODE_S * FPS, frames
    assert len(video) == 1, video
    assert video[0]["codec_name"] == "h264"
    assert (video[0]["width"], video[0]["height"]) == (640, 360)


# ----- 4. a camera reboot becomes a discontinuity, not a broken stream -----------------------


@dataclass(frozen=True)
class Observation:
    at_s: float
    status: int
    media_sequence: int | None
    last_msn: int | None
    discontinuity: bool


class PlaylistWatcher:
    """Polls the LL playlist on its own thread and client, recording every answer."""

    def __init__(self, base_url: str) -> None:
        self.observations: list[Observation] = []
        self._client = httpx.Client(base_url=base_url, timeout=10)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._started = time.monotonic()

    def __enter__(self) -> PlaylistWatcher:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self._client.close()

    def _run(self) -> None:
        while not self._stop.wait(POLL_INTERVAL_S):
            try:
                response = self._client.get(PLAYLIST)
            except httpx.TransportError:
                continue
            at_s = time.monotonic() - self._started
            if response.status_code != 200:
                self.observations.append(Observation(at_s, response.status_code, None, None, False))
                continue
            playlist = parse(response.text)
            self.observations.append(
                Observation(
                    at_s,
                    200,
                    playlist.media_sequence,
                    last_msn(playlist),
                    "#EXT-X-DISCONTINUITY\n" in response.text,
                )
            )


def recovered_after_discontinuity(server: CamgateServer) -> m3u8.M3U8 | None:
    """The playlist once the stream runs again with a complete segment after a discontinuity."""
    status = server.status(CAMERA_ID)
    if status["state"] != "running" or status["restartCount"] < 1:
        return None
    playlist = parse(server.client.get(PLAYLIST).text)
    segments = playlist.segments
    marks = [i for i, segment in enumerate(segments) if segment.discontinuity]
    return playlist if marks and any(s.uri for s in segments[marks[-1] :]) else None


def test_camera_restart_shows_as_a_discontinuity_and_the_stream_recovers(
    make_server: Callable[..., CamgateServer], camera: RtspCamera, tmp_path: Path
) -> None:
    server = make_server(**QUICK_RECOVERY_ENV)
    start_stream(server, camera)
    before = wait_ll_playlist(server, min_segments=1)

    with PlaylistWatcher(server.base_url) as watcher:
        camera.restart()
        playlist = wait_for(
            lambda: recovered_after_discontinuity(server),
            RECOVERY_TIMEOUT_S,
            "the stream to run again with a discontinuity in its playlist",
        )
    assert playlist is not None

    sequences = [o.media_sequence for o in watcher.observations if o.media_sequence is not None]
    assert sequences == sorted(sequences), watcher.observations
    edges = [o.last_msn for o in watcher.observations if o.last_msn is not None]
    assert edges == sorted(edges), watcher.observations
    assert playlist.media_sequence >= before.media_sequence
    # The first complete segment after the discontinuity decodes with its own init segment.
    marks = [i for i, segment in enumerate(playlist.segments) if segment.discontinuity]
    after = next(s for s in playlist.segments[marks[-1] :] if s.uri)
    assert after.init_section is not None
    base = f"/hls/{CAMERA_ID}/"
    media = tmp_path / "after-discontinuity.mp4"
    media.write_bytes(
        server.client.get(base + after.init_section.uri).content
        + server.client.get(base + after.uri).content
    )
    video = [s for s in probe_streams(media) if s["codec_type"] == "video"]
    assert video and video[0]["codec_name"] == "h264", probe_streams(media)
    # One FFmpeg per run, no probe: the camera fitted the first plan (H.264, no audio), and the
    # run after the restart the facts of the run before.
    assert "restarting ffmpeg" not in server.log()


# ----- 5. camera audio reaches the browser as AAC --------------------------------------------


@pytest.fixture
def audio_camera(request: pytest.FixtureRequest) -> Iterator[RtspCamera]:
    with RtspCamera(port=free_port(), gop_s=2.0, audio=request.param) as cam:
        yield cam


def ffmpeg_argv(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


@pytest.mark.parametrize(
    ("audio_camera", "audio_codec_args"),
    [("pcma", ["-c:a", "aac"]), ("aac", ["-c:a", "copy"])],
    ids=["g711-converted", "aac-copied"],
    indirect=["audio_camera"],
)
def test_segments_hold_h264_and_aac(
    server: CamgateServer,
    audio_camera: RtspCamera,
    audio_codec_args: list[str],
    tmp_path: Path,
) -> None:
    start_stream(server, audio_camera)

    playlist = wait_playlist(server, CAMERA_ID, timeout_s=40)
    media = first_segment_file(server, CAMERA_ID, playlist, tmp_path / "first.mp4")
    codecs = {str(s["codec_type"]): str(s["codec_name"]) for s in probe_streams(media)}

    assert codecs == {"video": "h264", "audio": "aac"}, codecs
    decode = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(media), "-map", "0:a:0", "-f", "null", "-"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert decode.returncode == 0 and decode.stderr == "", decode.stderr
    status = server.status(CAMERA_ID)
    converted = audio_codec_args[1] == "aac"
    assert status["transcodes"] == {"video": False, "audio": converted}  # video copied either way
    assert status["transcoding"] is converted  # anything re-encoded
    assert status["browserPlayback"]["playable"] == "all"
    argv = " ".join(ffmpeg_argv(status["pid"]))
    assert " ".join(audio_codec_args) in argv, argv
    # The first plan has no audio: FFmpeg described the camera, and one for its audio replaced
    # it; a second replacement only when that one's tiny probe got an audio packet first and
    # so no picture size (this camera's SDP has no SPS/PPS). Never a failed attempt.
    assert 1 <= server.log().count("restarting ffmpeg for it") <= 2, server.log()
    assert "keep changing" not in server.log()
