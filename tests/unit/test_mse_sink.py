"""MseSink and its viewer queues, fed real FFmpeg fragments (audio+video, one per packet)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

from camgate.fmp4 import Fmp4Reader, Fragment, InitSegment
from camgate.outputs.mse import ClientEnd, ClientQueue, GopCache, Message, MseSink
from camgate.outputs.mse.client import MAX_OVERFLOWS, OVERFLOW_WINDOW_S, Delivery

DATA = Path(__file__).parent / "data"
BIG = 10_000_000


def fixture_stream() -> tuple[InitSegment, list[Fragment]]:
    init, *fragments = Fmp4Reader().feed((DATA / "av_every_frame_ff5.mp4").read_bytes())
    assert isinstance(init, InitSegment)
    return init, [f for f in fragments if isinstance(f, Fragment)]


def endless_fragments() -> Iterator[Fragment]:
    """The fixture's fragments again and again: a camera that keeps streaming."""
    _, fragments = fixture_stream()
    while True:
        yield from fragments


def drain(client: ClientQueue) -> list[Message]:
    messages = []
    while (message := client.take()) is not None:
        messages.append(message)
    return messages


def media(messages: list[Message]) -> list[bytes]:
    return [m.payload for m in messages if m.media and isinstance(m.payload, bytes)]


def new_sink(
    queue_bytes: int = BIG, gop_bytes: int = BIG, clock: list[float] | None = None
) -> tuple[MseSink, InitSegment, list[Fragment]]:
    ticks = clock if clock is not None else [0.0]
    sink = MseSink(gop_bytes, queue_bytes, monotonic=lambda: ticks[0])
    init, fragments = fixture_stream()
    sink.set_init(init)
    return sink, init, fragments


def test_every_viewer_gets_the_announcement_the_init_segment_and_every_fragment() -> None:
    sink, init, fragments = new_sink()
    first, second = sink.subscribe(), sink.subscribe()

    for fragment in fragments:
        sink.add_fragment(fragment)

    expected = [f.data for f in fragments if f is not fragments[0]]  # audio before the keyframe
    for client in (first, second):
        messages = drain(client)
        announcement = json.loads(messages[0].payload)
        assert announcement == {
            "type": "init",
            "mime": 'video/mp4; codecs="avc1.42c00b,mp4a.40.2"',
            "codecs": "avc1.42c00b,mp4a.40.2",
            "width": 160,
            "height": 90,
        }
        assert messages[1].payload == init.data
        assert media(messages) == expected
        sent = len(messages[0].payload) + len(init.data) + sum(map(len, expected))
    assert sink.stats().bytes_sent == 2 * sent


def test_a_viewer_who_joins_late_starts_at_the_latest_keyframe() -> None:
    sink, init, fragments = new_sink()
    keyframes = [i for i, f in enumerate(fragments) if f.keyframe]
    assert len(keyframes) == 3
    for fragment in fragments[: keyframes[1] + 10]:
        sink.add_fragment(fragment)

    late = sink.subscribe()
    messages = drain(late)

    assert [json.loads(messages[0].payload)["type"], messages[1].payload] == ["init", init.data]
    assert media(messages) == [f.data for f in fragments[keyframes[1] : keyframes[1] + 10]]
    assert sink.ready and sink.consumers == 1


def test_a_viewer_who_joins_before_any_keyframe_waits_for_one() -> None:
    sink, _, fragments = new_sink()
    assert not sink.ready
    client = sink.subscribe()
    sink.add_fragment(fragments[0])  # audio, before the first keyframe

    assert media(drain(client)) == []
    sink.add_fragment(fragments[1])
    assert media(drain(client)) == [fragments[1].data]
    assert sink.ready


def test_a_slow_viewer_skips_to_the_next_keyframe_then_is_dropped() -> None:
    clock = [0.0]
    sink, _, _ = new_sink(queue_bytes=20_000, clock=clock)
    slow, fast = sink.subscribe(), sink.subscribe()
    control_bytes = slow.bytes_queued  # the announcement and init segment, never dropped
    stream = endless_fragments()
    fed: list[bytes] = []
    fast_media: list[bytes] = []
    overflows_seen = 0
    while slow.end is None:
        fragment = next(stream)
        sink.add_fragment(fragment)
        fed.append(fragment.data)
        clock[0] += 0.01
        fast_media.extend(media(drain(fast)))
        if sink.stats().queue_overflows > overflows_seen:
            overflows_seen += 1
            if slow.end is None:
                assert slow.state is Delivery.SKIPPING
                # What the slow viewer gets next starts with a keyframe it can decode.
                while slow.state is Delivery.SKIPPING:
                    keyframe = next(stream)
                    sink.add_fragment(keyframe)
                    fed.append(keyframe.data)
                    fast_media.extend(media(drain(fast)))
                assert keyframe.keyframe
                assert slow.bytes_queued == control_bytes + len(keyframe.data)

    stats = sink.stats()
    assert slow.end is ClientEnd.TOO_SLOW
    assert stats.queue_overflows == MAX_OVERFLOWS and stats.clients_dropped == 1
    assert stats.queue_drops > 0
    assert sink.consumers == 1 and stats.clients == 1  # the fast viewer stays
    assert fast.end is None and fast_media == fed[1:]  # all but the audio before the keyframe
    assert slow.take() is None


def test_overflows_far_apart_are_forgiven() -> None:
    clock = [0.0]
    sink, _, _ = new_sink(queue_bytes=20_000, clock=clock)
    client = sink.subscribe()
    stream = endless_fragments()
    for _ in range(3 * MAX_OVERFLOWS):
        overflows = sink.stats().queue_overflows
        while sink.stats().queue_overflows == overflows:
            sink.add_fragment(next(stream))
        clock[0] += OVERFLOW_WINDOW_S + 1
        drain(client)

    assert client.end is None and sink.stats().clients_dropped == 0


def test_a_viewer_that_never_reads_holds_bounded_memory() -> None:
    limit = 30_000
    sink, _, fragments = new_sink(queue_bytes=limit, gop_bytes=40_000)
    largest = max(len(f.data) for f in fragments)
    stuck = sink.subscribe()
    stream = endless_fragments()
    for _ in range(2000):
        sink.add_fragment(next(stream))
        assert stuck.bytes_queued <= max(limit, largest) + 1000  # + the init announcement
        assert sink.stats().bytes_held <= 40_000 + 1000
        if stuck.end is not None:
            break
    assert stuck.end is ClientEnd.TOO_SLOW and stuck.bytes_queued == 0


def test_a_new_init_segment_is_announced_and_viewers_start_over_at_a_keyframe() -> None:
    sink, init, fragments = new_sink()
    client = sink.subscribe()
    for fragment in fragments[:20]:
        sink.add_fragment(fragment)
    drain(client)

    sink.discontinuity()
    assert not sink.ready
    sink.set_init(init)
    for fragment in fragments[:5]:  # audio first, then the keyframe
        sink.add_fragment(fragment)
    messages = drain(client)

    kinds = [json.loads(m.payload)["type"] for m in messages if isinstance(m.payload, str)]
    assert kinds == ["discontinuity", "init"]
    assert init.data in [m.payload for m in messages]
    assert media(messages) == [f.data for f in fragments[1:5]]
    late = sink.subscribe()
    assert media(drain(late)) == [f.data for f in fragments[1:5]]


def test_closing_the_sink_ends_every_viewer() -> None:
    sink, _, fragments = new_sink()
    client = sink.subscribe()
    sink.add_fragment(fragments[1])
    sink.close()

    assert client.end is ClientEnd.STREAM_STOPPED and client.take() is None
    assert sink.consumers == 0
    assert sink.subscribe().end is ClientEnd.STREAM_STOPPED


async def test_the_sender_wakes_when_a_fragment_arrives() -> None:
    sink, _, fragments = new_sink()
    client = sink.subscribe()
    drain(client)
    waiter = asyncio.create_task(client.next())
    await asyncio.sleep(0)
    assert not waiter.done()

    sink.add_fragment(fragments[1])
    message = await asyncio.wait_for(waiter, 1.0)

    assert message is not None and message.payload == fragments[1].data
    ender = asyncio.create_task(client.next())
    sink.close()
    assert await asyncio.wait_for(ender, 1.0) is None


def test_gop_cache_drops_a_group_larger_than_its_bound() -> None:
    cache = GopCache(max_bytes=1000)
    cache.add(b"k" * 400, start_point=True)
    cache.add(b"p" * 400, start_point=False)
    assert cache.bytes_held == 800
    cache.add(b"p" * 400, start_point=False)
    assert cache.fragments == () and cache.bytes_held == 0
    cache.add(b"p" * 10, start_point=False)  # nothing to decode it from
    assert cache.fragments == ()
    cache.add(b"k" * 10, start_point=True)
    assert cache.fragments == (b"k" * 10,)
