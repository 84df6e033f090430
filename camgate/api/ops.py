"""Operations endpoints: health, readiness, the event stream (SSE) and Prometheus metrics."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from camgate.api.auth import Access, access
from camgate.api.deps import Manager
from camgate.manager import StreamManager
from camgate.state import StreamState

router = APIRouter(tags=["operations"])


@router.get("/healthz")
@access(Access.PUBLIC)
async def healthz() -> dict[str, Any]:
    """The process is alive and answering."""
    return {"success": True, "status": "ok"}


@router.get("/readyz")
@access(Access.PUBLIC)
async def readyz(manager: Manager) -> JSONResponse:
    """The store answers and the manager accepts work."""
    checks = {"store": await manager.store.ping(), "manager": manager.running}
    ready = all(checks.values())
    return JSONResponse({"success": ready, "checks": checks}, status_code=200 if ready else 503)


@router.get("/api/events")
@access(Access.VIEWER)
async def events(request: Request, manager: Manager) -> StreamingResponse:
    """Server-sent events: every stream event as JSON, as it happens."""

    async def feed() -> AsyncIterator[str]:
        # Subscribe before the greeting: a client that saw it misses no later event.
        with manager.bus.subscription() as queue:
            yield ": camgate events\n\n"
            while True:
                event = await queue.get()
                if await request.is_disconnected():
                    return
                yield f"event: {event.type}\ndata: {json.dumps(event.as_dict())}\n\n"

    return StreamingResponse(
        feed(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


class StreamCollector(Collector):
    """Reads the manager's state at scrape time; camera URLs are never labels."""

    def __init__(self, manager: StreamManager) -> None:
        self._manager = manager

    def collect(self) -> Iterator[Any]:
        streams = self._manager.streams
        by_state = GaugeMetricFamily("camgate_streams", "Cameras by stream state", labels=["state"])
        for state in StreamState:
            by_state.add_metric([str(state)], sum(1 for s in streams if s.state is state))
        yield by_state
        received = CounterMetricFamily(
            "camgate_stream_received_bytes", "Media bytes read from FFmpeg", labels=["camera"]
        )
        restarts = CounterMetricFamily(
            "camgate_stream_restarts", "Stream restarts", labels=["camera"]
        )
        held = GaugeMetricFamily(
            "camgate_stream_hls_bytes_held", "HLS bytes held in memory", labels=["camera"]
        )
        by_output = ["camera", "output"]
        viewers = GaugeMetricFamily(
            "camgate_output_viewers", "Viewers per camera and output", labels=by_output
        )
        sent = CounterMetricFamily(
            "camgate_output_sent_bytes", "Media bytes sent to viewers", labels=by_output
        )
        output_held = GaugeMetricFamily(
            "camgate_output_bytes_held", "Media held in memory per output", labels=by_output
        )
        # Each output's own figures (MSE queue drops, WebRTC PLIs, snapshot decodes, ...).
        figure = GaugeMetricFamily(
            "camgate_output_figure",
            "Every figure an output reports, by name (as in the camera's status)",
            labels=[*by_output, "figure"],
        )
        for stream in streams:
            camera = [stream.spec.camera_id]
            received.add_metric(camera, stream.bytes_received)
            restarts.add_metric(camera, stream.restart_count)
            stats = stream.outputs.stats() if stream.outputs is not None else {}
            hls = stats.get("hls")
            held.add_metric(camera, float(hls.bytes_held) if hls is not None else 0.0)
            for name, figures in stats.items():
                viewers.add_metric([*camera, name], figures.consumers)
                sent.add_metric([*camera, name], figures.bytes_sent)
                output_held.add_metric([*camera, name], figures.bytes_held)
                for key, value in figures.as_dict().items():
                    if isinstance(value, int | float) and not isinstance(value, bool):
                        figure.add_metric([*camera, name, key], float(value))
        yield from (received, restarts, held, viewers, sent, output_held, figure)
        limit = GaugeMetricFamily("camgate_max_concurrent_streams", "MAX_CONCURRENT_STREAMS")
        limit.add_metric([], self._manager.settings.max_concurrent_streams)
        yield limit


@router.get("/metrics")
@access(Access.VIEWER)
async def metrics(request: Request) -> Response:
    registry: CollectorRegistry = request.app.state.metrics_registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
