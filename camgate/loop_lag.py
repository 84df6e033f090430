"""How late the event loop runs its callbacks: the delay every viewer request and every stream
pump shares, exported as the `camgate_event_loop_lag_seconds` histogram.

A task asks to wake up every `interval_s` and records how much later than asked it woke. A loop
busy with one long callback (a large copy, a slow render) shows up here before viewers stall.
"""

from __future__ import annotations

import asyncio
import time

from prometheus_client import CollectorRegistry, Histogram

from camgate.tasks import cancel_and_wait

INTERVAL_S = 0.1
BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class LoopLagMonitor:
    """Measures the running loop's lag until `stop()`; one per app."""

    def __init__(self, registry: CollectorRegistry, interval_s: float = INTERVAL_S) -> None:
        self._interval_s = interval_s
        self._lag = Histogram(
            "camgate_event_loop_lag_seconds",
            "How much later than asked the event loop woke a periodic timer",
            buckets=BUCKETS_S,
            registry=registry,
        )
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="loop-lag")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait([self._task])

    async def _run(self) -> None:
        while True:
            asked = time.monotonic() + self._interval_s
            await asyncio.sleep(self._interval_s)
            self._lag.observe(max(0.0, time.monotonic() - asked))
