"""The browser pages: the dashboard, the player page and their static files (no CDN)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse, Response

from camgate.api.auth import Access, access

STATIC_DIR = Path(str(files("camgate.web") / "static"))

router = APIRouter(include_in_schema=False)


@router.get("/")
@access(Access.PUBLIC)
async def index() -> Response:
    dashboard = STATIC_DIR / "index.html"
    if dashboard.exists():
        return FileResponse(dashboard, headers={"Cache-Control": "no-cache"})
    return RedirectResponse("/docs")


@router.get("/docs")
@access(Access.PUBLIC)
async def docs() -> FileResponse:
    """The interactive API docs (Swagger UI, vendored: works offline)."""
    return FileResponse(STATIC_DIR / "docs.html", headers={"Cache-Control": "no-cache"})


@router.get("/watch/{camera_id}")
@access(Access.PUBLIC)
async def watch(camera_id: str) -> FileResponse:
    return FileResponse(STATIC_DIR / "watch.html", headers={"Cache-Control": "no-cache"})
