"""H.264 packets from FLV video tags, the way FFmpeg's FLV muxer writes them.

Why FLV: the fragmented MP4 that every other output reads is written one picture late, because
a sample's duration is the next sample's decode time minus its own, so FFmpeg's MP4 muxer holds
each picture until the next one arrives (40 ms at 25 fps). FLV stores no durations, and FFmpeg
writes each tag as soon as it has the packet, so a second FFmpeg output in FLV gives the WebRTC
output every picture one frame sooner. Each tag names its size, its time in milliseconds and
whether it is a keyframe; the payload is AVCC (length-prefixed NAL units) behind an
AVCDecoderConfigurationRecord sent once (Adobe FLV 10.1, E.4.3.1). Only video tags matter here;
script and audio tags are skipped. Pure: bytes in, items out, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

FLV_SIGNATURE = b"FLV"
FILE_HEADER_MIN_BYTES = 9
PREVIOUS_TAG_SIZE_BYTES = 4
TAG_HEADER_BYTES = 11
TAG_VIDEO = 9
CODEC_AVC = 7
FRAME_KEY = 1
AVC_SEQUENCE_HEADER = 0
AVC_NALU = 1
AVC_VIDEO_HEADER_BYTES = 5  # frame type/codec, AVCPacketType, 24-bit composition time


class FlvError(ValueError):
    """The bytes are not FLV as FFmpeg writes it."""


@dataclass(frozen=True)
class AvcSequenceHeader:
    """The stream's AVCDecoderConfigurationRecord (the avcC payload: SPS, PPS, NAL length size)."""

    record: bytes


@dataclass(frozen=True)
class VideoPacket:
    """One H.264 access unit as FFmpeg had it, in AVCC; times in milliseconds."""

    data: bytes
    dts_ms: int
    pts_ms: int
    keyframe: bool


FlvItem = AvcSequenceHeader | VideoPacket


def signed_24(raw: bytes) -> int:
    value = int.from_bytes(raw, "big")
    return value - (1 << 24) if value & 0x800000 else value


def video_item(body: bytes, timestamp_ms: int) -> FlvItem | None:
    """What one video tag's body holds; None for an end of sequence or an empty packet."""
    if len(body) < AVC_VIDEO_HEADER_BYTES:
        raise FlvError(f"video tag of {len(body)} bytes has no AVC header")
    frame_type, codec = body[0] >> 4, body[0] & 0x0F
    if codec != CODEC_AVC:
        raise FlvError(f"video tag with codec id {codec}, not H.264")
    packet_type = body[1]
    payload = body[AVC_VIDEO_HEADER_BYTES:]
    if packet_type == AVC_SEQUENCE_HEADER:
        return AvcSequenceHeader(payload)
    if packet_type != AVC_NALU or not payload:
        return None
    pts_ms = timestamp_ms + signed_24(body[2:5])
    return VideoPacket(payload, timestamp_ms, pts_ms, frame_type == FRAME_KEY)


class FlvReader:
    """Incremental: `feed` bytes as they come, get every video item completed by them."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._in_body = False  # past the file header

    def feed(self, chunk: bytes) -> list[FlvItem]:
        buffer = self._buffer
        buffer += chunk
        offset = 0
        if not self._in_body:
            if len(buffer) < FILE_HEADER_MIN_BYTES:
                return []
            if buffer[:3] != FLV_SIGNATURE:
                raise FlvError("not an FLV stream")
            offset = int.from_bytes(buffer[5:9], "big") + PREVIOUS_TAG_SIZE_BYTES
            if len(buffer) < offset:
                return []
            self._in_body = True
        items = []
        while len(buffer) - offset >= TAG_HEADER_BYTES:
            tag_type = buffer[offset] & 0x1F
            size = int.from_bytes(buffer[offset + 1 : offset + 4], "big")
            end = offset + TAG_HEADER_BYTES + size + PREVIOUS_TAG_SIZE_BYTES
            if len(buffer) < end:
                break
            if tag_type == TAG_VIDEO:
                timestamp = int.from_bytes(buffer[offset + 4 : offset + 7], "big")
                timestamp |= buffer[offset + 7] << 24
                body = bytes(buffer[offset + TAG_HEADER_BYTES : end - PREVIOUS_TAG_SIZE_BYTES])
                item = video_item(body, timestamp)
                if item is not None:
                    items.append(item)
            offset = end
        del buffer[:offset]
        return items
