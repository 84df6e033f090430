"""camgate: RTSP cameras to (Low-Latency) HLS for browsers, through supervised FFmpeg."""

__version__ = "0.1.0"
