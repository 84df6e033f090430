"""Many cheap RTSP cameras in one process, for fleet benchmarks.

Runs under the system ``/usr/bin/python3`` (GStreamer's RTSP server bindings come from Debian's
python3-gi). It encodes a few seconds of 720p H.264 once at start-up (a moving test card, about
2 Mbit/s, a keyframe every ``--gop-s``) and then serves ``--count`` mounts ``/cam0`` ...
``/cam<N-1>`` that replay those encoded frames in a loop at the frame rate, never encoding again:
the cost of a camera is packetizing and sending, as for a real one. Each mount starts at a random
frame of the loop when its first client connects, so keyframes arrive at a random phase, as
they do when a gateway connects to a camera that has been streaming for a while.

Prints ``READY rtsp://127.0.0.1:<port>`` once listening, then serves until SIGTERM/SIGINT or
until stdin closes (its controller is gone).
"""

from __future__ import annotations

import argparse
import random
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.support.rtsp_camera import _scheduled_running_time_ns  # noqa: E402


@dataclass(frozen=True)
class EncodedLoop:
    """Encoded access units (AVC, length-prefixed) and the caps that carry SPS/PPS."""

    caps: str
    frames: list[tuple[bytes, bool]]  # (access unit, is keyframe)

    @property
    def kbps(self) -> float:
        return sum(len(data) for data, _ in self.frames) * 8 / 1000


def encode_loop(
    width: int, height: int, fps: int, gop_s: float, seconds: float, kbps: int
) -> EncodedLoop:
    gop = max(1, round(fps * gop_s))
    count = max(gop, round(seconds / gop_s) * gop)  # whole GOPs, so the loop restarts on a keyframe
    pipeline = Gst.parse_launch(
        f"videotestsrc pattern=smpte horizontal-speed=8 num-buffers={count} "
        f"! video/x-raw,format=I420,width={width},height={height},framerate={fps}/1 "
        f"! x264enc bitrate={kbps} key-int-max={gop} speed-preset=ultrafast tune=zerolatency "
        "! h264parse ! video/x-h264,stream-format=avc,alignment=au ! appsink name=sink sync=false"
    )
    sink = pipeline.get_by_name("sink")
    pipeline.set_state(Gst.State.PLAYING)
    frames: list[tuple[bytes, bool]] = []
    caps = ""
    while (sample := sink.emit("pull-sample")) is not None:
        buffer = sample.get_buffer()
        ok, info = buffer.map(Gst.MapFlags.READ)
        if ok:
            frames.append((bytes(info.data), not buffer.has_flags(Gst.BufferFlags.DELTA_UNIT)))
            buffer.unmap(info)
        caps = sample.get_caps().to_string()
    pipeline.set_state(Gst.State.NULL)
    if not frames or not frames[0][1]:
        raise SystemExit("the encoder gave no frames or did not start with a keyframe")
    return EncodedLoop(caps, frames)


@dataclass
class Feed:
    appsrc: Gst.Element
    position: int
    last_pts_ns: int = -1


@dataclass
class LoopPusher:
    """One thread feeding every mount's appsrc from the shared encoded loop."""

    loop: EncodedLoop
    fps: int
    feeds: dict[int, Feed] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopped: threading.Event = field(default_factory=threading.Event)

    def watch(self, media: GstRtspServer.RTSPMedia) -> None:
        appsrc = media.get_element().get_by_name("src")
        with self.lock:
            self.feeds[id(appsrc)] = Feed(appsrc, random.randrange(len(self.loop.frames)))
        media.connect("unprepared", self._unprepared, id(appsrc))

    def _unprepared(self, _media: GstRtspServer.RTSPMedia, key: int) -> None:
        with self.lock:
            self.feeds.pop(key, None)

    def run(self) -> None:
        frame_s = 1.0 / self.fps
        frame_ns = Gst.SECOND // self.fps
        next_at = time.monotonic()
        frames = self.loop.frames
        while not self.stopped.is_set():
            next_at += frame_s
            delay = next_at - time.monotonic()
            if delay > 0:
                self.stopped.wait(delay)
            elif delay < -1.0:
                next_at = time.monotonic()
            with self.lock:
                feeds = list(self.feeds.values())
            for feed in feeds:
                pts = _scheduled_running_time_ns(feed.appsrc, next_at)
                if pts is None:
                    continue
                data, keyframe = frames[feed.position]
                feed.position = (feed.position + 1) % len(frames)
                buffer = Gst.Buffer.new_wrapped(data)
                buffer.pts = max(pts, feed.last_pts_ns + 1)
                buffer.duration = frame_ns
                if not keyframe:
                    buffer.set_flags(Gst.BufferFlags.DELTA_UNIT)
                feed.last_pts_ns = buffer.pts
                feed.appsrc.emit("push-buffer", buffer)


def build_server(port: int, count: int, pusher: LoopPusher) -> GstRtspServer.RTSPServer:
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(port))
    launch = (
        f"( appsrc name=src is-live=true format=time min-latency=0 max-buffers=8 "
        f'leaky-type=downstream caps="{pusher.loop.caps}" ! rtph264pay pt=96 '
        "config-interval=-1 name=pay0 )"
    )
    mounts = server.get_mount_points()
    for index in range(count):
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(launch)
        factory.set_shared(True)
        factory.connect("media-configure", lambda _f, media: pusher.watch(media))
        mounts.add_factory(f"/cam{index}", factory)
    return server


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--gop-s", type=float, default=2.0)
    parser.add_argument("--kbps", type=int, default=2000)
    parser.add_argument("--loop-s", type=float, default=8.0)
    args = parser.parse_args(argv)
    Gst.init(None)
    encoded = encode_loop(args.width, args.height, args.fps, args.gop_s, args.loop_s, args.kbps)
    print(
        f"encoded {len(encoded.frames)} frames once, {encoded.kbps / args.loop_s:.0f} kbit/s",
        file=sys.stderr,
        flush=True,
    )
    main_loop = GLib.MainLoop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_HIGH, signum, lambda: main_loop.quit() or False)
    pusher = LoopPusher(encoded, args.fps)
    server = build_server(args.port, args.count, pusher)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{args.port}", file=sys.stderr, flush=True)
        return 1
    thread = threading.Thread(target=pusher.run, name="loop-pusher", daemon=True)
    thread.start()

    def watch_stdin() -> None:
        sys.stdin.read()
        GLib.idle_add(main_loop.quit)

    threading.Thread(target=watch_stdin, daemon=True).start()
    print(f"READY rtsp://127.0.0.1:{args.port}", flush=True)
    main_loop.run()
    pusher.stopped.set()
    thread.join(timeout=2)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
