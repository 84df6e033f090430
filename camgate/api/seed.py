"""The seed contract's API: `POST/GET /api/streams/service`, exactly as the seed promised."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field, field_validator

from camgate.api.auth import Access, access
from camgate.api.deps import Manager
from camgate.api.errors import ERROR_REPLIES
from camgate.camera import CAMERA_ID_PATTERN, Overrides, validate_rtsp_url
from camgate.errors import InvalidInput
from camgate.status import ListReply, MessageReply, StatusReply
from camgate.stream import Stream

router = APIRouter(tags=["seed"], responses=ERROR_REPLIES)


def check_url(value: str | None) -> str | None:
    """Pydantic validator for an `rtspUrl` field (the field name is added by the caller)."""
    if value is not None:
        try:
            validate_rtsp_url(value, "rtspUrl")
        except InvalidInput as error:
            raise ValueError(str(error).removeprefix("rtspUrl ")) from None
    return value


class ServiceRequest(BaseModel):
    """Body of `POST /api/streams/service`."""

    model_config = ConfigDict(extra="forbid")

    cameraId: str = Field(pattern=CAMERA_ID_PATTERN)
    action: Literal["start", "stop", "restart"]
    rtspUrl: str | None = None
    overrides: Overrides | None = None

    _valid_url = field_validator("rtspUrl")(check_url)


def status_of(stream: Stream) -> dict[str, Any]:
    """A stream's status as JSON data for a reply."""
    return stream.status().model_dump(mode="json")


def ok(message: str | None = None, data: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"success": True}
    if message is not None:
        body["message"] = message
    if data is not None:
        body["data"] = data
    return body


@router.post("/api/streams/service", responses={200: {"model": MessageReply}})
@access(Access.ADMIN)
async def control_stream(request: ServiceRequest, manager: Manager) -> dict[str, Any]:
    """Start, stop or restart one camera's stream."""
    camera_id = request.cameraId
    if request.action == "start":
        if request.rtspUrl is None:
            raise InvalidInput("rtspUrl: required for action start")
        await manager.start(camera_id, request.rtspUrl, request.overrides)
        return ok(f"Stream started for camera {camera_id}")
    if request.action == "stop":
        await manager.stop(camera_id)
        return ok(f"Stream stopped for camera {camera_id}")
    await manager.restart(camera_id, request.rtspUrl, request.overrides)
    return ok(f"Stream restarted for camera {camera_id}")


@router.get("/api/streams/service", responses={200: {"model": ListReply | StatusReply}})
@access(Access.VIEWER)
async def stream_status(
    manager: Manager, cameraId: Annotated[str | None, Query(max_length=64)] = None
) -> dict[str, Any]:
    """All streams with counts, or one camera's status with `?cameraId=`."""
    if cameraId is not None:
        return ok(data=manager.status(cameraId).model_dump(mode="json"))
    return ok(data=manager.summary())
