"""Where a camera's live edge stood still: what tells a player's stall from a source's.

`LiveEdge` polls a camera's LL-HLS playlist while a player is watched and notes each time its
newest part changes. When the camera, FFmpeg or the whole (noisy, shared) test machine produced
nothing new for a while, every player stalls, and that is no fault of the one under test; a
stall while new parts kept coming is. `source_stalls` sorts a report's stalls by that.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType

import httpx

from camgate.tasks import cancel_and_wait
from tests.support.browser import PlaybackReport, Stall

POLL_S = 0.1
# A player a few parts behind live stalls for about as long as its source gave nothing, less
# what it had buffered, plus the time to fetch the first new part.
EXPLAINED_SLACK_S = 0.5


class LiveEdge:
    def __init__(self, base_url: str, playlist_path: str, headers: dict[str, str] | None = None):
        self._client = httpx.AsyncClient(base_url=base_url, headers=headers, timeout=10)
        self._path = playlist_path
        self._task: asyncio.Task[None] | None = None
        self.changes: list[float] = []  # loop times at which a new newest part was seen

    async def __aenter__(self) -> LiveEdge:
        self._task = asyncio.create_task(self._poll())
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._task is not None:
            await cancel_and_wait([self._task])
        await self._client.aclose()

    async def _poll(self) -> None:
        loop = asyncio.get_running_loop()
        newest = None
        while True:
            with contextlib.suppress(httpx.HTTPError):
                reply = await self._client.get(self._path)
                parts = [
                    line for line in reply.text.splitlines() if line.startswith("#EXT-X-PART:")
                ]
                if reply.status_code == 200 and parts and parts[-1] != newest:
                    newest = parts[-1]
                    self.changes.append(loop.time())
            await asyncio.sleep(POLL_S)

    def longest_still_s(self, start_s: float, end_s: float) -> float:
        """The longest time without a new part that overlaps ``start_s``..``end_s``."""
        longest = 0.0
        for before, after in zip(self.changes, self.changes[1:], strict=False):
            if after > start_s and before < end_s:
                longest = max(longest, after - before)
        return longest

    def source_stalls(self, report: PlaybackReport) -> tuple[list[Stall], list[Stall]]:
        """(stalls the source explains, the others) of a report followed while this polled."""
        explained, unexplained = [], []
        for stall in report.stalls:
            start_s = report.started_at_s + stall.at_s
            still_s = self.longest_still_s(start_s, start_s + stall.duration_s)
            if still_s >= stall.duration_s - EXPLAINED_SLACK_S:
                explained.append(stall)
            else:
                unexplained.append(stall)
        return explained, unexplained
