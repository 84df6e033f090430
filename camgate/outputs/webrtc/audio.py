"""The camera's audio for WebRTC viewers: its AAC as Opus, made once per camera, not per viewer.

WebRTC carries Opus and G.711, not AAC, and what the fMP4 holds is AAC: the camera's own, or what
FFmpeg made of a G.711 camera for HLS and MSE (``camgate/ffmpeg/command.py``). `OpusTranscoder`
decodes each AAC frame and encodes 40 ms Opus packets (PyAV: FFmpeg's AAC decoder, libopus). The
sink runs one per camera, only while a WebRTC viewer takes audio, and hands the same packets to
every viewer's `AudioQueue`; aiortc's Opus sender only packs a ready packet (``pack``), so per
viewer audio costs RTP and SRTP only. `aac_config` reads the decoder's configuration from the init
segment (pure). Nothing here knows RTP or HTTP.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass

import av
from av.audio.resampler import AudioResampler

from camgate.fmp4 import InitSegment, TrackInfo, find_box, read_descriptor
from camgate.outputs.webrtc.samples import Sample, sample_entry

log = logging.getLogger("camgate.webrtc")

OPUS_CLOCK_HZ = 48_000  # RFC 7587 4.1: the RTP clock of Opus is always 48 kHz
# 40 ms per packet: half the packets of the usual 20 ms, and so about half the per-viewer work
# (every packet is a wake-up, an RTP header, SRTP and a send for each viewer); receivers take any
# Opus frame length up to 120 ms (RFC 7587 4.2). The audio's own delay grows by 20 ms, and the
# video's not at all: the two tracks are separate streams, not synchronised by the browser.
OPUS_FRAME_MS = 40
OPUS_FRAME_SAMPLES = OPUS_CLOCK_HZ * OPUS_FRAME_MS // 1000
OPUS_BITRATE = 64_000
AUDIO_SAMPLE_ENTRY_BYTES = 28  # ISO 14496-12 12.2.3; QuickTime sound descriptions v1/v2 add more
QUICKTIME_EXTRA_BYTES = {1: 16, 2: 36}
AUDIO_QUEUE_PACKETS = 1000 // OPUS_FRAME_MS  # a second: a viewer this far behind loses the oldest
ES_DESCRIPTOR, DECODER_CONFIG, DECODER_SPECIFIC = 0x03, 0x04, 0x05  # ISO 14496-1 7.2.2.1
OBJECT_TYPE_AAC = 0x40  # ISO 14496-1 Table 5: Audio ISO/IEC 14496-3


@dataclass(frozen=True)
class OpusPacket:
    """One 40 ms Opus packet, shared by every viewer; its time at 48 kHz on the camera's one
    rising audio clock (it never goes back, whatever the camera's stream does)."""

    data: bytes
    pts: int


def aac_config(init: InitSegment) -> tuple[TrackInfo, bytes] | None:
    """The AAC track and its AudioSpecificConfig (ISO 14496-3 1.6.2.1) from the esds of its
    sample entry, or None when the stream has no AAC audio."""
    track = next((t for t in init.tracks if t.kind == "audio"), None)
    entry = sample_entry(init, b"soun")
    if track is None or entry is None or entry[0] != b"mp4a":
        return None
    payload = entry[1]
    version = int.from_bytes(payload[8:10], "big")
    start = AUDIO_SAMPLE_ENTRY_BYTES + QUICKTIME_EXTRA_BYTES.get(version, 0)
    esds = find_box(payload, start, len(payload), (b"esds",))
    config = esds and decoder_specific_info(payload, esds[0] + 4, esds[1])  # esds is a full box
    return (track, config) if config else None


def decoder_specific_info(data: bytes, offset: int, end: int) -> bytes | None:
    """The DecoderSpecificInfo of an AAC ES_Descriptor (ISO 14496-1 7.2.6.5), or None."""
    tag, offset, es_end = read_descriptor(data, offset, end)
    if tag != ES_DESCRIPTOR or offset + 3 > es_end:
        return None
    flags = data[offset + 2]
    offset += 3 + (2 if flags & 0x80 else 0) + (2 if flags & 0x20 else 0)
    if flags & 0x40:  # URL_Flag: a length-prefixed URL
        offset += 1 + data[offset]
    tag, offset, config_end = read_descriptor(data, offset, es_end)
    if tag != DECODER_CONFIG or data[offset] != OBJECT_TYPE_AAC:
        return None
    tag, info, info_end = read_descriptor(data, offset + 13, config_end)
    return data[info:info_end] if tag == DECODER_SPECIFIC and info_end > info else None


class OpusTranscoder:
    """AAC frames in, 40 ms Opus packets out, for one camera."""

    def __init__(self, config: bytes) -> None:
        self._decoder = av.CodecContext.create("aac", "r")
        self._decoder.extradata = config
        self._resampler: AudioResampler | None = None
        self._encoder: av.AudioCodecContext | None = None
        self._next_pts = 0
        self.failures = 0

    def transcode(self, samples: list[Sample]) -> list[OpusPacket]:
        packets: list[OpusPacket] = []
        for sample in samples:
            try:
                for frame in self._decoder.decode(av.Packet(sample.data)):
                    resampler = self._resampler or self._start(frame)
                    for chunk in resampler.resample(frame):
                        packets += self._encode(chunk)
            except av.FFmpegError as error:
                self.failures += 1
                if self.failures == 1:
                    log.warning("webrtc: an AAC frame could not be turned into Opus: %s", error)
        return packets

    def _start(self, first: av.AudioFrame) -> AudioResampler:
        """Resampler and encoder for the camera's channels: most cameras are mono, and Opus
        encodes mono for about a quarter less than stereo (RFC 7587: a receiver of
        ``opus/48000/2`` decodes either)."""
        layout = "mono" if first.layout.nb_channels == 1 else "stereo"
        self._resampler = AudioResampler(
            format="s16", layout=layout, rate=OPUS_CLOCK_HZ, frame_size=OPUS_FRAME_SAMPLES
        )
        encoder = av.CodecContext.create("libopus", "w")
        encoder.bit_rate = OPUS_BITRATE
        encoder.format = "s16"
        encoder.layout = layout
        encoder.sample_rate = OPUS_CLOCK_HZ
        encoder.options = {"frame_duration": str(OPUS_FRAME_MS)}
        self._encoder = encoder
        return self._resampler

    def _encode(self, frame: av.AudioFrame) -> list[OpusPacket]:
        assert self._encoder is not None  # made by _start with the resampler
        frame.pts = None  # the encoder's clock is ours: one packet every OPUS_FRAME_MS
        out = []
        for packet in self._encoder.encode(frame):
            out.append(OpusPacket(bytes(packet), self._next_pts))
            self._next_pts += OPUS_FRAME_SAMPLES
        return out


class AudioQueue:
    """One viewer's Opus packets: nothing until it joins (its track first asks), then the live
    packets, the oldest dropped beyond ``max_packets``."""

    def __init__(self, max_packets: int = AUDIO_QUEUE_PACKETS) -> None:
        self.max_packets = max_packets
        self.joined = False
        self.ended = False
        self.packets_dropped = 0
        self._packets: deque[OpusPacket] = deque()
        self._queued = asyncio.Event()

    def offer(self, packet: OpusPacket) -> None:
        if not self.joined or self.ended:
            return
        if len(self._packets) >= self.max_packets:
            self._packets.popleft()
            self.packets_dropped += 1
        self._packets.append(packet)
        self._queued.set()

    def finish(self) -> None:
        self.ended = True
        self._packets.clear()
        self._queued.set()

    def take(self) -> OpusPacket | None:
        return self._packets.popleft() if self._packets else None

    async def next(self) -> OpusPacket | None:
        """The next packet, waiting for one; None once the viewer is ended."""
        while (packet := self.take()) is None and not self.ended:
            self._queued.clear()
            await self._queued.wait()
        return packet
