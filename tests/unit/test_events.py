"""The event bus: listeners, unsubscribe, bounded async subscribers."""

from __future__ import annotations

import asyncio

from camgate.events import EventBus, EventType


def test_listeners_get_events_until_unsubscribed() -> None:
    bus = EventBus()
    seen: list[str] = []
    unsubscribe = bus.subscribe(lambda event: seen.append(event.type))
    bus.publish(EventType.STARTED, "cam")
    unsubscribe()
    bus.publish(EventType.STOPPED, "cam")
    assert seen == ["started"]
    assert bus.subscriber_count == 0


def test_a_failing_listener_does_not_stop_the_others() -> None:
    bus = EventBus()
    seen: list[int] = []

    def broken(_event: object) -> None:
        raise RuntimeError("boom")

    bus.subscribe(broken)
    bus.subscribe(lambda event: seen.append(event.seq))
    first, second = bus.publish(EventType.STATE, None), bus.publish(EventType.READY, None)
    assert seen == [first.seq, second.seq] and second.seq > first.seq


async def test_a_slow_stream_subscriber_keeps_only_the_newest_events() -> None:
    bus = EventBus(queue_size=3)
    stream = bus.stream()
    waiting = asyncio.ensure_future(stream.__anext__())
    await asyncio.sleep(0)  # let the subscriber register
    for n in range(10):
        bus.publish(EventType.STATE, "cam", n=n)
    first = await asyncio.wait_for(waiting, 1)
    rest = [await asyncio.wait_for(stream.__anext__(), 1) for _ in range(2)]
    assert [e.data["n"] for e in [first, *rest]] == [7, 8, 9]
    await stream.aclose()
    assert bus.subscriber_count == 0
