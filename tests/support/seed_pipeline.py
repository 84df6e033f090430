"""The seed's HLS pipeline, rebuilt as a baseline to measure camgate against, and a static server.

``SeedPipeline`` runs FFmpeg the way the seed did: RTSP over TCP, re-encoded with libx264
``ultrafast``/``zerolatency`` into MPEG-TS HLS segments (4 s, 6 in the playlist by default) on
disk. ``StaticServer`` serves those files on 127.0.0.1 in camgate's URL layout (``/hls/<id>/...``,
``/static/...``, ``/watch/<id>``), so camgate's own player page plays the baseline unchanged.

Test and benchmark support only: nothing in ``camgate`` may import it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import time
import urllib.parse
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Self

import camgate.web

STATIC_DIR = Path(camgate.web.__file__).parent / "static"
WATCH_PAGE = STATIC_DIR / "watch.html"
_WATCH_ROUTE = re.compile(r"/watch/[^/]+/?")
_WATCH_EVENTS = re.compile(r"/watch/([^/]+)/events")
_STOP_GRACE_S = 5.0
_POLL_S = 0.1


class SeedPipeline:
    """One FFmpeg child writing ``<work_dir>/site/hls/<camera_id>/index.m3u8`` from a camera."""

    def __init__(
        self,
        rtsp_url: str,
        work_dir: Path,
        *,
        camera_id: str = "seed",
        segment_s: float = 4.0,
        list_size: int = 6,
        ffmpeg: str = "ffmpeg",
    ) -> None:
        self.rtsp_url = rtsp_url
        self.camera_id = camera_id
        self.segment_s = segment_s
        self.list_size = list_size
        self.site_dir = work_dir / "site"
        self.output_dir = self.site_dir / "hls" / camera_id
        self.log_path = work_dir / f"ffmpeg-{camera_id}.log"
        self._ffmpeg = shutil.which(ffmpeg) or ffmpeg
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def playlist_path(self) -> Path:
        return self.output_dir / "index.m3u8"

    @property
    def watch_path(self) -> str:
        """The player page for this stream on a ``StaticServer`` serving ``site_dir``."""
        return f"/watch/{urllib.parse.quote(self.camera_id)}?ll=0"

    def argv(self) -> list[str]:
        return [
            self._ffmpeg,
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "warning",
            "-rtsp_transport",
            "tcp",
            "-i",
            self.rtsp_url,
            "-an",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-tune",
            "zerolatency",
            "-pix_fmt",
            "yuv420p",
            # The HLS muxer can only cut at keyframes; x264's default GOP (250 frames) would make
            # every segment 10 s, so force one keyframe per segment as the seed's 4 s promise needs.
            "-force_key_frames",
            f"expr:gte(t,n_forced*{self.segment_s})",
            "-f",
            "hls",
            "-hls_time",
            f"{self.segment_s:g}",
            "-hls_list_size",
            str(self.list_size),
            "-hls_flags",
            "delete_segments",
            str(self.playlist_path),
        ]

    def start(self) -> None:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            # A session of its own: a Ctrl-C in the terminal reaches only our process, which
            # then stops FFmpeg in order instead of racing it.
            self._process = subprocess.Popen(
                self.argv(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )

    def wait_ready(self, timeout_s: float = 30.0, min_segments: int = 1) -> None:
        """Block until the playlist lists ``min_segments`` segments; raise if FFmpeg dies first."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                code = self._process.returncode
                raise RuntimeError(f"FFmpeg exited with {code}: {self.log_tail()}")
            if self.segment_count() >= min_segments:
                return
            time.sleep(_POLL_S)
        raise TimeoutError(f"no HLS playlist after {timeout_s:g} s: {self.log_tail()}")

    def segment_count(self) -> int:
        try:
            return self.playlist_path.read_text().count("#EXTINF")
        except FileNotFoundError:
            return 0

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=_STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class _SiteHandler(SimpleHTTPRequestHandler):
    """The site directory's files, plus camgate's ``/static/`` folder and ``/watch/<id>`` page."""

    protocol_version = "HTTP/1.1"
    extensions_map = {
        **SimpleHTTPRequestHandler.extensions_map,
        ".m3u8": "application/vnd.apple.mpegurl",
        ".ts": "video/mp2t",
        ".m4s": "video/iso.segment",
        ".js": "text/javascript",
    }
    server: _SiteServer

    def do_GET(self) -> None:
        # camgate's player page follows its camera's state from /watch/<id>/events; the seed
        # pipeline has no such feed, so say once what camgate says of a stream that plays.
        feed = _WATCH_EVENTS.fullmatch(urllib.parse.urlsplit(self.path).path)
        if feed is None:
            super().do_GET()
            return
        state = {
            "cameraId": feed.group(1),
            "state": "running",
            "browserPlayback": {"playable": "all", "note": None},
            "codecs": None,
            "audioOutput": False,
        }
        body = f"event: state\ndata: {json.dumps(state)}\n\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def translate_path(self, path: str) -> str:
        route = urllib.parse.urlsplit(path).path
        if _WATCH_ROUTE.fullmatch(route):
            return str(WATCH_PAGE)
        if route.startswith("/static/"):
            self.directory = str(STATIC_DIR)
            return super().translate_path(route.removeprefix("/static"))
        self.directory = str(self.server.site_dir)
        return super().translate_path(path)

    def end_headers(self) -> None:
        # A live playlist changes every segment; a cached copy would freeze the player.
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


class _SiteServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, site_dir: Path) -> None:
        self.site_dir = site_dir
        super().__init__(("127.0.0.1", port), _SiteHandler)


class StaticServer:
    """A threaded HTTP server on 127.0.0.1 (``port=0``: any free port) for a site directory."""

    def __init__(self, site_dir: Path, port: int = 0) -> None:
        self.site_dir = site_dir
        self._requested_port = port
        self._server: _SiteServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("StaticServer is not running")
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._server = _SiteServer(self._requested_port, self.site_dir)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="static-server", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=_STOP_GRACE_S)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
