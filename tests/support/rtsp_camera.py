"""A synthetic RTSP camera for camgate's integration tests and benchmarks.

Runs under the system ``/usr/bin/python3`` (GStreamer's RTSP server bindings come from Debian's
python3-gi, not from the venv). Video frames are painted in Python -- a bar moving across gray,
optionally a 32-bit wall-clock timecode in the top 80 rows -- and pushed into ``appsrc`` at the
frame rate; the GStreamer RTSP server encodes and serves them. Prints one line
``READY rtsp://127.0.0.1:<port><path>`` once listening, then serves until SIGTERM/SIGINT.

With ``--control-stdin`` it reads ``pause`` / ``resume`` lines from stdin and exits when stdin
closes (its controller is gone). It must never depend on camgate or on anything in the venv.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from dataclasses import dataclass

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

TIMECODE_BITS = 32
TIMECODE_BLOCK_PX = 20
TIMECODE_BAND_ROWS = 40
LUMA_WHITE = 235  # BT.601 limited range, what x264 expects from I420
LUMA_BLACK = 16
LUMA_GRAY = 128
CHROMA_NEUTRAL = 128  # U = V = 128: no colour
BAR_WIDTH_PX = 32
BAR_STEP_PX = 8
AUDIO_TONE_HZ = 440
APPSRC_MAX_BUFFERS = 8
G711_ELEMENTS = {"pcma": ("alawenc", "rtppcmapay"), "pcmu": ("mulawenc", "rtppcmupay")}


@dataclass(frozen=True)
class CameraOptions:
    port: int
    path: str
    width: int
    height: int
    fps: int
    gop_s: float
    bitrate_kbps: int
    codec: str
    audio: str
    user: str | None
    password: str | None
    auth: str
    timecode: bool
    control_stdin: bool


def parse_options(argv: list[str]) -> CameraOptions:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/cam")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--gop-s", type=float, default=2.0)
    parser.add_argument("--bitrate-kbps", type=int, default=1000)
    parser.add_argument("--codec", choices=["h264", "h265"], default="h264")
    parser.add_argument("--audio", choices=["none", "aac", "pcma", "pcmu"], default="none")
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument("--auth", choices=["digest", "basic"], default="digest")
    parser.add_argument("--timecode", action="store_true")
    parser.add_argument(
        "--control-stdin",
        action="store_true",
        help="read pause/resume lines from stdin; exit when stdin closes",
    )
    args = parser.parse_args(argv)
    if not args.path.startswith("/"):
        parser.error("--path must start with /")
    if args.width % 2 or args.height % 2:
        parser.error("--width and --height must be even (I420 chroma is subsampled 2x2)")
    timecode_fits = (
        args.width >= TIMECODE_BITS * TIMECODE_BLOCK_PX and args.height >= 2 * TIMECODE_BAND_ROWS
    )
    if args.timecode and not timecode_fits:
        parser.error("--timecode needs a frame at least 640x80")
    if (args.user is None) != (args.password is None):
        parser.error("--user and --password go together")
    return CameraOptions(
        port=args.port,
        path=args.path,
        width=args.width,
        height=args.height,
        fps=args.fps,
        gop_s=args.gop_s,
        bitrate_kbps=args.bitrate_kbps,
        codec=args.codec,
        audio=args.audio,
        user=args.user,
        password=args.password,
        auth=args.auth,
        timecode=args.timecode,
        control_stdin=args.control_stdin,
    )


class FramePainter:
    """Paints I420 frames: a bar moving over gray, optionally a timecode band on top."""

    def __init__(self, width: int, height: int, timecode: bool) -> None:
        self._width = width
        self._timecode = timecode
        self._band_rows = 2 * TIMECODE_BAND_ROWS if timecode else 0
        self._picture_rows = height - self._band_rows
        self._chroma = bytes([CHROMA_NEUTRAL]) * ((width // 2) * (height // 2) * 2)
        self._timecode_pad = bytes([LUMA_GRAY]) * (width - TIMECODE_BITS * TIMECODE_BLOCK_PX)
        self._white_block = bytes([LUMA_WHITE]) * TIMECODE_BLOCK_PX
        self._black_block = bytes([LUMA_BLACK]) * TIMECODE_BLOCK_PX

    def paint(self, frame_index: int, timecode_ms: int) -> bytes:
        parts: list[bytes] = []
        if self._timecode:
            parts.extend(self._timecode_rows(timecode_ms))
        parts.append(self._bar_row(frame_index) * self._picture_rows)
        parts.append(self._chroma)
        return b"".join(parts)

    def _bar_row(self, frame_index: int) -> bytes:
        x = (frame_index * BAR_STEP_PX) % self._width
        bar = min(BAR_WIDTH_PX, self._width - x)
        gray = bytes([LUMA_GRAY])
        return gray * x + bytes([LUMA_WHITE]) * bar + gray * (self._width - x - bar)

    def _timecode_rows(self, timecode_ms: int) -> tuple[bytes, bytes]:
        # Bit i (MSB first) is block i; the top band is white for 1, the bottom band the inverse,
        # so a decoder needs no absolute threshold: bit = mean(top) > mean(bottom).
        top, bottom = [], []
        for i in range(TIMECODE_BITS):
            one = (timecode_ms >> (TIMECODE_BITS - 1 - i)) & 1
            top.append(self._white_block if one else self._black_block)
            bottom.append(self._black_block if one else self._white_block)
        top_row = b"".join(top) + self._timecode_pad
        bottom_row = b"".join(bottom) + self._timecode_pad
        return top_row * TIMECODE_BAND_ROWS, bottom_row * TIMECODE_BAND_ROWS


def build_launch(options: CameraOptions) -> str:
    """The media factory's gst-launch description: appsrc video (pay0), optional tone (pay1)."""
    caps = (
        f"video/x-raw,format=I420,width={options.width},height={options.height},"
        f"framerate={options.fps}/1"
    )
    # is-live, and each frame is stamped with the pipeline's running time (see _push), so
    # frames play in real time. The sinks hold each frame for the pipeline latency, so the
    # leaky queue must cover it (with 2 buffers and 128 ms latency only ~8 fps got through);
    # beyond that it drops the oldest frame rather than building delay.
    source = (
        f"appsrc name=src is-live=true format=time min-latency=0 "
        f"max-buffers={APPSRC_MAX_BUFFERS} leaky-type=downstream caps={caps}"
    )
    gop_frames = max(1, round(options.fps * options.gop_s))
    if options.codec == "h265":
        encode = (
            f"x265enc tune=zerolatency speed-preset=ultrafast key-int-max={gop_frames} "
            f"bitrate={options.bitrate_kbps} ! h265parse ! rtph265pay"
        )
    else:
        encode = (
            f"x264enc tune=zerolatency speed-preset=ultrafast key-int-max={gop_frames} "
            f"bitrate={options.bitrate_kbps} threads=1 ! h264parse ! rtph264pay"
        )
    # config-interval=-1: repeat the parameter sets with every IDR so a client joining the
    # shared media mid-stream can decode from the next keyframe.
    video = f"{source} ! {encode} config-interval=-1 pt=96 name=pay0"
    audio = _audio_branch(options.audio)
    return f"( {video} {audio} )" if audio else f"( {video} )"


def _audio_branch(audio: str) -> str:
    if audio == "none":
        return ""
    if audio == "aac":
        encoder = _first_element("avenc_aac", "voaacenc", "fdkaacenc")
        return f"{_tone(48000, 1024)} ! {encoder} ! aacparse ! rtpmp4gpay pt=97 name=pay1"
    encoder, payloader = G711_ELEMENTS[audio]
    # 160 samples = 20 ms per packet, what G.711 cameras send. audiotestsrc's default 1024
    # samples (128 ms) would add 128 ms of pipeline latency that the sinks wait out.
    return f"{_tone(8000, 160)} ! {encoder} ! {payloader} name=pay1"


def _tone(rate_hz: int, samples_per_buffer: int) -> str:
    # The valve lets `pause` silence audio too: a frozen camera sends no media at all.
    return (
        f"audiotestsrc name=tone is-live=true wave=sine freq={AUDIO_TONE_HZ} volume=0.3 "
        f"samplesperbuffer={samples_per_buffer} ! valve name=audiovalve ! audioconvert "
        f"! audio/x-raw,rate={rate_hz},channels=1"
    )


def _first_element(*names: str) -> str:
    for name in names:
        if Gst.ElementFactory.find(name) is not None:
            return name
    raise SystemExit(f"none of these GStreamer elements is installed: {', '.join(names)}")


class FramePusher:
    """Pushes painted frames into the appsrc of whichever media is PLAYING, at the frame rate."""

    def __init__(self, options: CameraOptions) -> None:
        self._painter = FramePainter(options.width, options.height, options.timecode)
        self._frame_s = 1.0 / options.fps
        self._frame_ns = Gst.SECOND // options.fps
        self._last_pts_ns = -1
        self._lock = threading.Lock()
        self._appsrc: Gst.Element | None = None
        self._valve: Gst.Element | None = None
        self._paused = False
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="frame-pusher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=2)

    def watch(self, media: GstRtspServer.RTSPMedia) -> None:
        """Feed a newly configured media from now on (a shared factory runs one at a time)."""
        element = media.get_element()
        appsrc = element.get_by_name("src")
        valve = element.get_by_name("audiovalve")
        tone = element.get_by_name("tone")
        if tone is not None:
            tone.get_static_pad("src").add_probe(Gst.PadProbeType.QUERY_UPSTREAM, _deny_seeking)
        with self._lock:
            self._appsrc, self._valve = appsrc, valve
            self._last_pts_ns = -1
            if valve is not None:
                valve.set_property("drop", self._paused)
        media.connect("unprepared", self._on_unprepared, appsrc)

    def set_paused(self, paused: bool) -> None:
        with self._lock:
            self._paused = paused
            if self._valve is not None:
                self._valve.set_property("drop", paused)

    def _on_unprepared(self, _media: GstRtspServer.RTSPMedia, appsrc: Gst.Element) -> None:
        with self._lock:
            if self._appsrc is appsrc:
                self._appsrc, self._valve = None, None

    def _run(self) -> None:
        frame_index = 0
        next_frame_at = time.monotonic()
        while not self._stopped.is_set():
            next_frame_at += self._frame_s
            delay_s = next_frame_at - time.monotonic()
            if delay_s > 0:
                self._stopped.wait(delay_s)
            elif delay_s < -1.0:
                next_frame_at = time.monotonic()  # stalled (e.g. SIGSTOP): resync, no burst
            self._push(frame_index, next_frame_at)
            frame_index += 1

    def _push(self, frame_index: int, scheduled_at: float) -> None:
        # Holding the lock across the push makes `pause` strict: once set_paused returns, no
        # further frame enters the pipeline (appsrc never blocks: block=false, leaky queue).
        with self._lock:
            appsrc = None if self._paused else self._appsrc
            pts_ns = _scheduled_running_time_ns(appsrc, scheduled_at) if appsrc else None
            if appsrc is None or pts_ns is None:
                return
            captured_ms = int(time.time() * 1000) % 2**TIMECODE_BITS
            buffer = Gst.Buffer.new_wrapped(self._painter.paint(frame_index, captured_ms))
            buffer.pts = max(pts_ns, self._last_pts_ns + 1)
            buffer.duration = self._frame_ns
            self._last_pts_ns = buffer.pts
            appsrc.emit("push-buffer", buffer)


def _scheduled_running_time_ns(appsrc: Gst.Element, scheduled_at: float) -> int | None:
    """The pipeline running time of the frame's scheduled instant; None unless PLAYING.

    Stamping the schedule rather than the (jittery) moment of the push keeps frame timestamps
    evenly spaced, like a real camera's. Only a PLAYING pipeline has a running clock: a frame
    pushed while the media is still starting cannot be timed and that client may see no video.
    """
    clock = appsrc.get_clock()
    if clock is None or appsrc.get_state(0)[1] != Gst.State.PLAYING:
        return None
    lateness_ns = max(0, int((time.monotonic() - scheduled_at) * Gst.SECOND))
    return max(0, clock.get_time() - appsrc.get_base_time() - lateness_ns)


def _deny_seeking(_pad: Gst.Pad, info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
    # audiotestsrc claims to be seekable, so the media would seek on PLAY (Range: npt=0-) and
    # fail on the appsrc (503). Failing the query here leaves the appsrc's answer: a live camera
    # is never seekable. (The query itself is not writable from Python.)
    if info.get_query().type == Gst.QueryType.SEEKING:
        return Gst.PadProbeReturn.DROP
    return Gst.PadProbeReturn.OK


def build_server(options: CameraOptions, pusher: FramePusher) -> GstRtspServer.RTSPServer:
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(options.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(build_launch(options))
    # Shared: every client joins the one running pipeline, like a real camera's single encoder.
    factory.set_shared(True)
    factory.connect("media-configure", lambda _factory, media: pusher.watch(media))
    if options.user is not None and options.password is not None:
        _require_auth(server, factory, options)
    server.get_mount_points().add_factory(options.path, factory)
    return server


def _require_auth(
    server: GstRtspServer.RTSPServer,
    factory: GstRtspServer.RTSPMediaFactory,
    options: CameraOptions,
) -> None:
    assert options.user is not None and options.password is not None
    role = "camera-user"
    token = GstRtspServer.RTSPToken()
    token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, role)
    auth = GstRtspServer.RTSPAuth()
    # One method per camera: GI cannot pass BASIC|DIGEST (the flags type is a plain enum).
    if options.auth == "digest":
        auth.add_digest(options.user, options.password, token)
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
    else:
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(options.user, options.password), token)
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.BASIC)
    server.set_auth(auth)
    permissions = Gst.Structure.new_from_string(
        f"{role}, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"
    )
    factory.add_role_from_structure(permissions)


def read_control_lines(pusher: FramePusher, loop: GLib.MainLoop) -> None:
    """Apply pause/resume lines from stdin, acknowledging each with `OK <command>` on stdout."""
    for line in sys.stdin:
        command = line.strip()
        if command in ("pause", "resume"):
            pusher.set_paused(command == "pause")
            print(f"OK {command}", flush=True)
        elif command:
            print(f"unknown command: {command}", file=sys.stderr, flush=True)
    GLib.idle_add(loop.quit)  # stdin closed: the controller is gone


def main(argv: list[str]) -> int:
    options = parse_options(argv)
    Gst.init(None)
    loop = GLib.MainLoop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_HIGH, signum, lambda: loop.quit() or False)
    pusher = FramePusher(options)
    server = build_server(options, pusher)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{options.port}", file=sys.stderr, flush=True)
        return 1
    if options.control_stdin:
        threading.Thread(target=read_control_lines, args=(pusher, loop), daemon=True).start()
    pusher.start()
    print(f"READY rtsp://127.0.0.1:{options.port}{options.path}", flush=True)
    loop.run()
    pusher.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
