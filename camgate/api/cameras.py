"""The resource API over the same service: `/api/cameras/{id}` and its start/stop/restart."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, field_validator

from camgate.api.deps import Manager
from camgate.api.seed import check_url, ok
from camgate.camera import CAMERA_ID_PATTERN, CameraSpec, Overrides

router = APIRouter(prefix="/api/cameras", tags=["cameras"])

CameraId = Annotated[str, Path(pattern=CAMERA_ID_PATTERN)]


class CameraBody(BaseModel):
    """Body of `PUT /api/cameras/{id}`: the camera's whole desired state."""

    model_config = ConfigDict(extra="forbid")

    rtspUrl: str
    overrides: Overrides = Overrides()
    enabled: bool = True

    _valid_url = field_validator("rtspUrl")(check_url)


class RestartBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rtspUrl: str | None = None
    overrides: Overrides | None = None

    _valid_url = field_validator("rtspUrl")(check_url)


@router.get("")
async def list_cameras(manager: Manager) -> dict[str, Any]:
    return ok(data=manager.summary())


@router.get("/{camera_id}")
async def get_camera(camera_id: CameraId, manager: Manager) -> dict[str, Any]:
    return ok(data=manager.get(camera_id).status())


@router.put("/{camera_id}")
async def put_camera(camera_id: CameraId, body: CameraBody, manager: Manager) -> dict[str, Any]:
    """Create or replace a camera; it streams if `enabled` (the default)."""
    stream = await manager.put(CameraSpec(camera_id, body.rtspUrl, body.overrides), body.enabled)
    return ok(f"Camera {camera_id} saved", stream.status())


@router.delete("/{camera_id}")
async def delete_camera(camera_id: CameraId, manager: Manager) -> dict[str, Any]:
    await manager.delete(camera_id)
    return ok(f"Camera {camera_id} deleted")


@router.post("/{camera_id}/start")
async def start_camera(camera_id: CameraId, manager: Manager) -> dict[str, Any]:
    spec = manager.get(camera_id).spec
    stream = await manager.start(camera_id, spec.url, spec.overrides)
    return ok(f"Stream started for camera {camera_id}", stream.status())


@router.post("/{camera_id}/stop")
async def stop_camera(camera_id: CameraId, manager: Manager) -> dict[str, Any]:
    stream = await manager.stop(camera_id)
    return ok(f"Stream stopped for camera {camera_id}", stream.status())


@router.post("/{camera_id}/restart")
async def restart_camera(
    camera_id: CameraId, manager: Manager, body: RestartBody | None = None
) -> dict[str, Any]:
    body = body or RestartBody()
    stream = await manager.restart(camera_id, body.rtspUrl, body.overrides)
    return ok(f"Stream restarted for camera {camera_id}", stream.status())
