#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages camgate needs.
# The service itself needs no system FFmpeg: it runs the static build from the imageio-ffmpeg
# wheel, which starts in a few milliseconds where a dynamically linked one takes a few hundred
# (docs/benchmarks.md, start-up). An `ffmpeg` on PATH or FFMPEG_PATH takes precedence.
#   --test  also the test camera (GStreamer RTSP server), FFmpeg and ffprobe (the tests read the
#           output with them) and Chromium.
set -euo pipefail

packages=(python3 python3-venv python3-pip ca-certificates)
if [[ "${1:-}" == "--test" ]]; then
  packages+=(
    ffmpeg python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-tools
    gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
    gstreamer1.0-plugins-ugly gstreamer1.0-libav chromium fonts-dejavu-core
    postgresql
  )
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo_cmd=()
  [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -q
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
