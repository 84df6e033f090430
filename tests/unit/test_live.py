"""LiveHls: blocking-reload waits on real FFmpeg fragments, lookups and stats."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

from camgate.fmp4 import Fmp4Reader, Fragment, InitSegment
from camgate.outputs.hls.live import LiveHls
from camgate.outputs.hls.segmenter import Part, Segmenter

DATA = Path(__file__).parent / "data"


def fixture_stream() -> tuple[InitSegment, list[Fragment]]:
    init, *fragments = Fmp4Reader().feed((DATA / "av_every_frame_ff5.mp4").read_bytes())
    assert isinstance(init, InitSegment)
    return init, [f for f in fragments if isinstance(f, Fragment)]


def new_live(
    clock: list[float] | None = None, lead_in: int = 0
) -> tuple[LiveHls, Iterator[Fragment]]:
    """Segments follow keyframes from the start unless a lead-in is asked for."""
    init, fragments = fixture_stream()
    ticks = clock if clock is not None else [0.0]
    segmenter = Segmenter(1.0, 0.2, 5, lead_in_segments=lead_in)
    live = LiveHls(segmenter, monotonic=lambda: ticks[0])
    live.set_init(init)
    return live, iter(fragments)


def feed_until_part(live: LiveHls, fragments: Iterator[Fragment]) -> Part:
    for fragment in fragments:
        parts = live.add_fragment(fragment)
        if parts:
            return parts[-1]
    raise AssertionError("the fixture ran out before a part completed")


async def still_waiting(task: asyncio.Task[bool]) -> bool:
    for _ in range(5):
        await asyncio.sleep(0)  # let the waiter run up to its await
    return not task.done()


async def test_wait_for_part_returns_when_the_part_arrives() -> None:
    live, fragments = new_live()
    feed_until_part(live, fragments)
    msn, part_no = live.segmenter.next_position
    waiter = asyncio.create_task(live.wait_for_part(msn, part_no, timeout_s=5.0))
    assert await still_waiting(waiter)

    arrived = feed_until_part(live, fragments)

    assert await asyncio.wait_for(waiter, 1.0) is True
    assert (arrived.msn, arrived.part_no) == (msn, part_no)


async def test_wait_for_part_times_out() -> None:
    live, fragments = new_live()
    feed_until_part(live, fragments)
    loop = asyncio.get_running_loop()
    started = loop.time()

    assert await live.wait_for_part(5, 0, timeout_s=0.05) is False
    assert loop.time() - started >= 0.05


async def test_request_past_the_last_part_is_answered_by_the_next_segment() -> None:
    live, fragments = new_live()
    while not live.segmenter.segments:
        feed_until_part(live, fragments)
    closed = live.segmenter.segments[-1]
    asked = (closed.msn, len(closed.parts))  # (msn, last part + 1)
    assert not live.has_part(*asked)
    waiter = asyncio.create_task(live.wait_for_part(*asked, timeout_s=5.0))
    assert await still_waiting(waiter)

    arrived = feed_until_part(live, fragments)

    assert await asyncio.wait_for(waiter, 1.0) is True
    assert (arrived.msn, arrived.part_no, arrived.independent) == (closed.msn + 1, 0, True)


async def test_msn_without_part_waits_for_the_complete_segment() -> None:
    live, fragments = new_live()
    feed_until_part(live, fragments)
    waiter = asyncio.create_task(live.wait_for_part(0, None, timeout_s=5.0))
    assert await still_waiting(waiter)
    while not live.segmenter.segments:
        feed_until_part(live, fragments)
    assert await asyncio.wait_for(waiter, 1.0) is True


async def test_wait_for_hinted_part_index() -> None:
    live, fragments = new_live()
    feed_until_part(live, fragments)
    hinted = live.next_part_index
    waiter = asyncio.create_task(live.wait_for_part_index(hinted, timeout_s=5.0))
    assert await still_waiting(waiter)

    arrived = feed_until_part(live, fragments)

    assert await asyncio.wait_for(waiter, 1.0) is True
    assert live.part(hinted) is arrived


async def test_close_wakes_waiters() -> None:
    live, fragments = new_live()
    feed_until_part(live, fragments)
    waiter = asyncio.create_task(live.wait_for_part(9, 0, timeout_s=30.0))
    assert await still_waiting(waiter)
    live.close()
    assert await asyncio.wait_for(waiter, 1.0) is False


async def test_playable_after_the_two_lead_in_parts() -> None:
    live, fragments = new_live(lead_in=2)
    waiter = asyncio.create_task(live.wait_until_playable(timeout_s=5.0))
    assert await still_waiting(waiter)
    assert live.playlist() is None

    feed_until_part(live, fragments)
    assert live.playlist() is None and live.playlist(low_latency=False) is None
    feed_until_part(live, fragments)

    assert await asyncio.wait_for(waiter, 1.0) is True
    assert (live.playlist() or "").startswith("#EXTM3U")
    assert (live.playlist(low_latency=False) or "").startswith("#EXTM3U")


async def test_lookups_and_stats() -> None:
    clock = [100.0]
    live, fragments = new_live(clock)
    fed = []
    while len(live.segmenter.segments) < 2:
        fed.append(next(fragments))
        clock[0] += 0.04
        live.add_fragment(fed[-1])
    stats = live.stats()

    assert stats.fragments == len(fed)
    assert live.bytes_total == sum(len(f.data) for f in fed)
    assert stats.last_media_age_s == 0.0
    clock[0] += 1.5
    assert live.stats().last_media_age_s == 1.5
    assert stats.segments == 2
    # The keyframe that closed segment 1 opens a part but no segment yet.
    assert live.segmenter.open_segment is None
    assert stats.parts == sum(len(s.parts) for s in live.segmenter.segments) == 11
    assert 0 < stats.bytes_held <= live.bytes_total + len(live.init(1) or b"")
    assert stats.as_dict()["lastMediaAgeSeconds"] == 0.0 and "fragmentsDropped" in stats.as_dict()
    assert live.init(1) == fixture_stream()[0].data and live.init(2) is None
    assert live.segment(1) is live.segmenter.segments[1] and live.segment(2) is None
    assert live.playlist(low_latency=False) is not None
