"""Turning one keyframe (init segment + the fragment that holds it) into a JPEG with FFmpeg.

`jpeg_argv` is pure; `FfmpegJpegDecoder` runs it: the MP4 bytes go to FFmpeg's stdin, the JPEG
comes from its stdout. Never through a shell, never longer than a deadline, and the child is
always reaped, whether the decode succeeds, fails, times out or is cancelled.
"""

from __future__ import annotations

import asyncio

from camgate.child import SpawnError, kill_group, spawn

DECODE_TIMEOUT_S = 10.0
# A 4K JPEG at this quality is 1-3 MB; anything far beyond is not a picture we asked for.
MAX_JPEG_BYTES = 16 * 1024 * 1024
STDERR_TAIL_BYTES = 2000
READ_CHUNK_BYTES = 64 * 1024
JPEG_QUALITY = "4"  # mjpeg qscale: 2 (best) to 31; 4 is close to what cameras send


class DecodeFailed(Exception):
    """FFmpeg produced no JPEG from the keyframe; the message says why."""


def jpeg_argv(ffmpeg: str, width: int | None) -> list[str]:
    """The FFmpeg command that decodes the first video frame of an MP4 on stdin to a JPEG on
    stdout, scaled to `width` (keeping the aspect ratio) when given."""
    scale = ["-vf", f"scale={width}:-2"] if width is not None else []  # -2: an even height
    return [
        ffmpeg,
        *("-hide_banner", "-nostdin", "-loglevel", "error"),
        # One decoding thread: a single frame gains little from more, and a snapshot must not
        # take every core from the streams; pipe only, so the MP4 cannot point FFmpeg at a file.
        *("-threads", "1", "-protocol_whitelist", "pipe"),
        *("-f", "mp4", "-i", "pipe:0"),
        *("-map", "0:v:0", "-frames:v", "1", *scale),
        *("-f", "mjpeg", "-q:v", JPEG_QUALITY, "pipe:1"),
    ]


async def read_head(stream: asyncio.StreamReader | None, limit: int) -> tuple[bytes, bool]:
    """Everything `stream` yields up to `limit` bytes; True (and stop reading) if it has more."""
    data = bytearray()
    while stream is not None and (chunk := await stream.read(READ_CHUNK_BYTES)):
        data += chunk
        if len(data) > limit:
            return bytes(data[:limit]), True
    return bytes(data), False


async def read_tail(stream: asyncio.StreamReader | None, limit: int) -> bytes:
    """The last `limit` bytes of `stream`, read to its end so the writer never blocks on it."""
    data = b""
    while stream is not None and (chunk := await stream.read(READ_CHUNK_BYTES)):
        data = (data + chunk)[-limit:]
    return data


class FfmpegJpegDecoder:
    """Decodes MP4 bytes holding a keyframe into a JPEG, one short FFmpeg run per call."""

    def __init__(self, ffmpeg: str, timeout_s: float = DECODE_TIMEOUT_S) -> None:
        self.ffmpeg = ffmpeg
        self.timeout_s = timeout_s

    async def __call__(self, mp4: bytes, width: int | None) -> bytes:
        try:
            async with asyncio.timeout(self.timeout_s):
                return await self._run(mp4, width)
        except TimeoutError:
            raise DecodeFailed(f"decoding took longer than {self.timeout_s:g} s") from None

    async def _run(self, mp4: bytes, width: int | None) -> bytes:
        try:
            process = await spawn(jpeg_argv(self.ffmpeg, width), stdin_bytes=mp4)
        except SpawnError as error:
            raise DecodeFailed(str(error)) from None
        stderr_tail = asyncio.create_task(read_tail(process.stderr, STDERR_TAIL_BYTES))
        try:
            jpeg, too_big = await read_head(process.stdout, MAX_JPEG_BYTES)
            if too_big:
                raise DecodeFailed(f"the JPEG is larger than {MAX_JPEG_BYTES} bytes")
            code = await process.wait()
            stderr = await stderr_tail
        finally:
            if process.returncode is None:
                kill_group(process)
                await process.wait()
            stderr_tail.cancel()
        if code != 0 or not jpeg:
            detail = stderr.decode(errors="replace").strip().splitlines()
            raise DecodeFailed(f"FFmpeg exited {code}: {detail[-1] if detail else 'no output'}")
        return jpeg
