"""GStreamer as an HLS client: plays a URL with playbin3 for a while and reports what it saw.

Runs under the system Python (GStreamer's bindings live there, as for ``rtsp_camera.py``):

    /usr/bin/python3 gst_hls_client.py URL SECONDS

Prints one JSON line: video frames rendered (at real-time pace), seconds from the start to the
first frame, the adaptive demuxer playbin3 picked (``hlsdemux2`` on GStreamer >= 1.22) and every
error or warning message. Exits 0 however playback went; the caller judges the figures.
"""

from __future__ import annotations

import json
import sys
import time

import gi

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402

POLL_NS = 50 * 1_000_000


def demuxers(pipeline: Gst.Element) -> list[str]:
    found = []
    iterator = pipeline.iterate_recurse()
    while True:
        result, element = iterator.next()
        if result != Gst.IteratorResult.OK:
            return found
        name = element.get_factory().get_name() if element.get_factory() else ""
        if "demux" in name:
            found.append(name)


def main(url: str, seconds: float) -> None:
    Gst.init(None)
    started = time.monotonic()
    pipeline = Gst.ElementFactory.make("playbin3")
    video = Gst.ElementFactory.make("fakesink")
    video.set_property("sync", True)
    video.set_property("signal-handoffs", True)
    pipeline.set_property("video-sink", video)
    pipeline.set_property("audio-sink", Gst.ElementFactory.make("fakesink"))
    pipeline.set_property("uri", url)
    seen = {"frames": 0, "first_frame_s": None}

    def on_frame(*_: object) -> None:
        if seen["frames"] == 0:
            seen["first_frame_s"] = round(time.monotonic() - started, 3)
        seen["frames"] += 1

    video.connect("handoff", on_frame)
    messages: list[str] = []
    found: list[str] = []
    pipeline.set_state(Gst.State.PLAYING)
    bus = pipeline.get_bus()
    wanted = Gst.MessageType.ERROR | Gst.MessageType.WARNING | Gst.MessageType.EOS
    while time.monotonic() - started < seconds:
        message = bus.timed_pop_filtered(POLL_NS, wanted)
        found = found or demuxers(pipeline)
        if message is None:
            continue
        if message.type == Gst.MessageType.EOS:
            messages.append("eos")
            break
        error, debug = (
            message.parse_error() if message.type == Gst.MessageType.ERROR else message.parse_warning()
        )
        kind = "error" if message.type == Gst.MessageType.ERROR else "warning"
        messages.append(f"{kind}: {error.message} ({(debug or '').splitlines()[0][:200]})")
        if message.type == Gst.MessageType.ERROR:
            break
    pipeline.set_state(Gst.State.NULL)
    print(json.dumps({**seen, "demuxers": found, "messages": messages}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]))
