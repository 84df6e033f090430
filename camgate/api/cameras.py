"""The resource API over the same service: `/api/cameras/{id}` and its start/stop/restart."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator

from camgate.api.auth import Access, Authorizer, access
from camgate.api.deps import Manager
from camgate.api.errors import ERROR_REPLIES
from camgate.api.seed import check_url, ok, status_of
from camgate.camera import CAMERA_ID_PATTERN, CameraSpec, Overrides
from camgate.config import Settings
from camgate.status import ListReply, MessageReply, StatusReply, ViewerUrlReply

router = APIRouter(prefix="/api/cameras", tags=["cameras"], responses=ERROR_REPLIES)

CameraId = Annotated[str, Path(pattern=CAMERA_ID_PATTERN)]


class CameraBody(BaseModel):
    """Body of `PUT /api/cameras/{id}`: the camera's whole desired state."""

    model_config = ConfigDict(extra="forbid")

    rtspUrl: str
    overrides: Overrides = Overrides()
    enabled: bool = True
    onDemand: bool = Field(
        False, description="pull the camera only while someone watches (idle otherwise)"
    )

    _valid_url = field_validator("rtspUrl")(check_url)


class RestartBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rtspUrl: str | None = None
    overrides: Overrides | None = None

    _valid_url = field_validator("rtspUrl")(check_url)


@router.get("", responses={200: {"model": ListReply}})
@access(Access.VIEWER)
async def list_cameras(manager: Manager) -> dict[str, Any]:
    return ok(data=manager.summary())


@router.get("/{camera_id}", responses={200: {"model": StatusReply}})
@access(Access.VIEWER)
async def get_camera(camera_id: CameraId, manager: Manager) -> dict[str, Any]:
    return ok(data=manager.status(camera_id).model_dump(mode="json"))


@router.put("/{camera_id}", responses={200: {"model": StatusReply}})
@access(Access.ADMIN)
async def put_camera(camera_id: CameraId, body: CameraBody, manager: Manager) -> dict[str, Any]:
    """Create or replace a camera; it streams if `enabled` (the default)."""
    spec = CameraSpec(camera_id, body.rtspUrl, body.overrides, body.onDemand)
    stream = await manager.put(spec, body.enabled)
    return ok(f"Camera {camera_id} saved", status_of(stream))


@router.delete("/{camera_id}", responses={200: {"model": MessageReply}})
@access(Access.ADMIN)
async def delete_camera(camera_id: CameraId, manager: Manager) -> dict[str, Any]:
    await manager.delete(camera_id)
    return ok(f"Camera {camera_id} deleted")


@router.post("/{camera_id}/start", responses={200: {"model": StatusReply}})
@access(Access.ADMIN)
async def start_camera(camera_id: CameraId, manager: Manager) -> dict[str, Any]:
    stream = await manager.start_known(camera_id)
    return ok(f"Stream started for camera {camera_id}", status_of(stream))


@router.post("/{camera_id}/stop", responses={200: {"model": StatusReply}})
@access(Access.ADMIN)
async def stop_camera(camera_id: CameraId, manager: Manager) -> dict[str, Any]:
    stream = await manager.stop(camera_id)
    return ok(f"Stream stopped for camera {camera_id}", status_of(stream))


@router.post("/{camera_id}/restart", responses={200: {"model": StatusReply}})
@access(Access.ADMIN)
async def restart_camera(
    camera_id: CameraId, manager: Manager, body: RestartBody | None = None
) -> dict[str, Any]:
    body = body or RestartBody()
    stream = await manager.restart(camera_id, body.rtspUrl, body.overrides)
    return ok(f"Stream restarted for camera {camera_id}", status_of(stream))


class ViewerUrlBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ttlSeconds: int | None = Field(None, ge=10, le=7 * 86400)


@router.post("/{camera_id}/viewer-url", responses={200: {"model": ViewerUrlReply}})
@access(Access.VIEWER)
async def viewer_url(
    camera_id: CameraId, request: Request, manager: Manager, body: ViewerUrlBody | None = None
) -> dict[str, Any]:
    """A signed, expiring link to watch one camera without a token (for sharing or embedding)."""
    manager.get(camera_id)  # 404 for an unknown camera
    authorizer: Authorizer = request.app.state.authorizer
    settings: Settings = request.app.state.settings
    ttl_s = body.ttlSeconds if body and body.ttlSeconds else settings.viewer_url_ttl_s
    expires_at = int(time.time()) + ttl_s
    query = authorizer.signer.query(camera_id, expires_at)
    base = str(request.base_url).rstrip("/")
    return ok(
        f"Viewer URL for camera {camera_id}",
        {
            "watch": f"{base}/watch/{camera_id}?{query}",
            "hls": f"{base}/hls/{camera_id}/index.m3u8?{query}",
            "expiresAt": datetime.fromtimestamp(expires_at, UTC).isoformat(),
            "ttlSeconds": ttl_s,
        },
    )
