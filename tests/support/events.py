"""Reading camgate's server-sent events (`/api/events`) from a test, with bounded reads."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from types import TracebackType
from typing import Any

import httpx

from tests.support.server import CamgateServer


class EventFeed:
    """Reads `/api/events` (SSE) in the test's own thread, each read bounded by `read_s`.

    The server queues every event published after the subscription until it is read, so a test
    opens the feed, acts, then reads what happened.
    """

    def __init__(self, server: CamgateServer, read_s: float = 20) -> None:
        self._client = httpx.Client(base_url=server.base_url, timeout=httpx.Timeout(5, read=read_s))
        self._response: httpx.Response | None = None
        self._lines: Iterator[str] = iter(())
        self.seen: list[dict[str, Any]] = []

    def __enter__(self) -> EventFeed:
        request = self._client.build_request("GET", "/api/events")
        self._response = self._client.send(request, stream=True)
        assert self._response.status_code == 200
        self._lines = self._response.iter_lines()
        assert next(self._lines).startswith(":")  # the greeting: subscribed from here on
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._response is not None:
            self._response.close()
        self._client.close()

    def wait(self, type_: str, camera_id: str, timeout_s: float) -> dict[str, Any]:
        """The next event of this type for this camera; fail if none comes in time."""
        deadline = time.monotonic() + timeout_s
        data: str | None = None
        for line in self._lines:
            if line.startswith("data:"):
                data = line[5:].strip()
            elif not line and data is not None:
                event: dict[str, Any] = json.loads(data)
                self.seen.append(event)
                data = None
                if event["type"] == type_ and event["cameraId"] == camera_id:
                    return event
            if time.monotonic() > deadline:
                break
        kinds = [(e["type"], e["cameraId"]) for e in self.seen]
        raise AssertionError(f"no {type_!r} event for {camera_id} in {timeout_s}s; saw {kinds}")

    def of(self, type_: str, camera_id: str) -> list[dict[str, Any]]:
        return [e for e in self.seen if e["type"] == type_ and e["cameraId"] == camera_id]
