"""What the WebRTC output reads from an offer and changes in its answer (pure SDP functions)."""

from __future__ import annotations

from camgate.outputs.webrtc.ice import announce_addresses, offered_codecs, without_mdns_candidates

OFFER = "\r\n".join(
    [
        "v=0",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111",
        "a=rtpmap:111 opus/48000/2",
        "m=video 9 UDP/TLS/RTP/SAVPF 96 102",
        "a=rtpmap:96 VP8/90000",
        "a=rtpmap:102 H264/90000",
        "",
    ]
)
# What Chromium offers once it has gathered: its host addresses hidden behind mDNS names.
MDNS = "a=candidate:1 1 udp 2113937151 0c5b2a0e-54a1-4f1e-9d33-1f6d2b1b2a55.local 52000 typ host"
RELAY = "a=candidate:2 1 udp 41885439 198.51.100.4 3478 typ relay raddr 0.0.0.0 rport 0"


def test_offered_codecs_are_read_per_media_kind() -> None:
    assert offered_codecs(OFFER, "video") == {"VP8", "H264"}
    assert offered_codecs(OFFER, "audio") == {"OPUS"}


def test_an_announced_address_repeats_each_ipv4_host_candidate() -> None:
    answer = "a=candidate:abc 1 udp 2130706431 192.0.2.2 50000 typ host\r\n"
    answer += "a=candidate:def 1 udp 2130706431 fe80::1 50001 typ host\r\n"

    lines = announce_addresses(answer, ["203.0.113.7"]).splitlines()

    assert lines[1] == "a=candidate:abcx0 1 udp 2130706175 203.0.113.7 50000 typ host"
    assert len(lines) == 3


def test_mdns_candidates_are_dropped_and_ice_waits_for_the_browsers_checks() -> None:
    offer = OFFER + f"{MDNS}\r\n{RELAY}\r\na=end-of-candidates\r\n"

    lines = without_mdns_candidates(offer).splitlines()

    assert MDNS not in lines and RELAY in lines
    # Without end-of-candidates the server keeps listening for peer-reflexive candidates.
    assert "a=end-of-candidates" not in lines
    assert without_mdns_candidates(OFFER) == OFFER
