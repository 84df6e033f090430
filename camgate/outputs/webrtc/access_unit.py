"""H.264 access units as an RTP packetizer takes them: Annex-B, parameter sets before keyframes.

MP4 stores H.264 as AVCC: each NAL unit behind a big-endian length of 1, 2 or 4 bytes, with the
SPS and PPS kept once in the init segment's avcC box (ISO 14496-15 5.3.3). RTP (RFC 6184) sends
NAL units and a decoder joining at a keyframe needs the SPS/PPS in band, so each keyframe gets
them prepended. Pure functions of bytes; nothing here does I/O or decodes a picture.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from camgate.fmp4 import Fmp4Error, InitSegment, find_box
from camgate.outputs.webrtc.samples import sample_entry

START_CODE = b"\x00\x00\x00\x01"
NAL_IDR = 5
NAL_SPS = 7
NAL_PPS = 8
NAL_AUD = 9
VISUAL_SAMPLE_ENTRY_BYTES = 78  # ISO 14496-12 12.1.3: fields before the child boxes


@dataclass(frozen=True)
class AvcConfig:
    """What an avcC box says: NAL length size and the parameter sets, each without a prefix."""

    length_size: int
    sps: tuple[bytes, ...]
    pps: tuple[bytes, ...]

    @property
    def parameter_sets(self) -> bytes:
        """SPS then PPS as Annex-B."""
        return b"".join(START_CODE + nal for nal in (*self.sps, *self.pps))


def parse_avcc(box: bytes) -> AvcConfig:
    """AvcConfig from an avcC payload (AVCDecoderConfigurationRecord, ISO 14496-15 5.3.3.1)."""
    if len(box) < 7 or box[0] != 1:
        raise Fmp4Error("avcC is not an AVCDecoderConfigurationRecord version 1")
    length_size = (box[4] & 0x03) + 1
    if length_size == 3:
        raise Fmp4Error("avcC declares 3-byte NAL lengths, which ISO 14496-15 does not allow")
    offset = 5
    sets: list[tuple[bytes, ...]] = []
    for mask in (0x1F, 0xFF):  # numOfSequenceParameterSets has 5 bits, PPS count 8
        count = box[offset] & mask
        offset += 1
        units = []
        for _ in range(count):
            size = int.from_bytes(box[offset : offset + 2], "big")
            if offset + 2 + size > len(box):
                raise Fmp4Error("avcC parameter set overruns the box")
            units.append(box[offset + 2 : offset + 2 + size])
            offset += 2 + size
        sets.append(tuple(units))
    return AvcConfig(length_size, sets[0], sets[1])


def avc_config(init: InitSegment) -> AvcConfig | None:
    """The video track's avcC, or None when the video is not H.264 (or there is none)."""
    entry = sample_entry(init, b"vide")
    if entry is None or entry[0] not in (b"avc1", b"avc3"):
        return None
    payload = entry[1]
    config = find_box(payload, VISUAL_SAMPLE_ENTRY_BYTES, len(payload), (b"avcC",))
    return parse_avcc(payload[config[0] : config[1]]) if config else None


def nal_units(sample: bytes, length_size: int) -> Iterator[bytes]:
    """The NAL units of one AVCC sample, without their length prefixes."""
    offset = 0
    while offset < len(sample):
        if offset + length_size > len(sample):
            raise Fmp4Error("AVCC sample ends inside a NAL length")
        size = int.from_bytes(sample[offset : offset + length_size], "big")
        offset += length_size
        if size == 0 or offset + size > len(sample):
            raise Fmp4Error(f"AVCC NAL unit of {size} bytes overruns its sample")
        yield sample[offset : offset + size]
        offset += size


def nal_type(nal: bytes) -> int:
    return nal[0] & 0x1F


def is_keyframe(nals: list[bytes]) -> bool:
    """An IDR picture: a decoder can start here (H.264 7.4.1.2.4)."""
    return any(nal_type(nal) == NAL_IDR for nal in nals)


def access_unit(sample: bytes, config: AvcConfig) -> tuple[bytes, bool]:
    """(Annex-B bytes, keyframe) of one AVCC sample; a keyframe carries SPS and PPS in front
    unless the camera already put them in band. Access unit delimiters are dropped: RFC 6184
    senders need not send them and they cost a packet each."""
    nals = [nal for nal in nal_units(sample, config.length_size) if nal_type(nal) != NAL_AUD]
    keyframe = is_keyframe(nals)
    in_band = {nal_type(nal) for nal in nals} >= {NAL_SPS, NAL_PPS}
    prefix = config.parameter_sets if keyframe and not in_band else b""
    return prefix + b"".join(START_CODE + nal for nal in nals), keyframe
