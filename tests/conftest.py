"""Settings shared by every test.

The tests run the FFmpeg the service runs by default: the static build from the imageio-ffmpeg
wheel (scripts/run.sh installs no system FFmpeg; Debian's is installed for the tests only, for
ffprobe and as a second, independent reader of camgate's output). A test that wants another
FFmpeg sets FFMPEG_PATH itself.
"""

from __future__ import annotations

import os

import imageio_ffmpeg

os.environ.setdefault("FFMPEG_PATH", imageio_ffmpeg.get_ffmpeg_exe())
