"""The browser pages' files (``camgate/web/static``), from memory, under versioned URLs.

Every file is read once, at import. In the pages, scripts and stylesheets each reference to
another file (``"/static/NAME"``) gets the version of this build of the files (``?v=`` and a
hash of them all), and a request carrying that version is answered ``Cache-Control: public,
max-age=31536000, immutable``: once a browser has opened a player page, the next one needs no
request for its scripts, and an upgraded camgate has new URLs, so no browser runs yesterday's
scripts against today's server. A request without the version (a hand-written URL) is answered
``no-cache`` with an ETag (the browser asks again, 304 while unchanged). The pages themselves
(`page`: ``/``, ``/docs``, ``/watch/<id>``) are always ``no-cache``.

`AssetsFastPath` answers ``GET``/``HEAD /static/...`` below the web framework, inside the
request guard (its Host rules and security headers apply), as the HLS fast path does: a player
page asks for a dozen files at once, and through the framework and Starlette's `StaticFiles`
each took about 2.8 ms of the server. Other paths, and files not found, go on to the app.
"""

from __future__ import annotations

import hashlib
import mimetypes
import re
from dataclasses import dataclass
from pathlib import Path

from camgate.api.guard import ASGIApp, Receive, Scope, Send

PREFIX = "/static/"
IMMUTABLE = b"public, max-age=31536000, immutable"
NO_CACHE = b"no-cache"
# A quoted (or url(...)) reference to one of the files, in the files that may hold some.
REFERENCE = re.compile(rb"""(?<=["'(])/static/([A-Za-z0-9_.\-/]+)(?=["')])""")
REWRITTEN = (".html", ".js", ".css")


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str
    etag: bytes


class Assets:
    def __init__(self, files: dict[str, bytes]) -> None:
        digest = hashlib.sha256()
        for name in sorted(files):
            digest.update(name.encode() + b"\0" + files[name] + b"\0")
        self.version = digest.hexdigest()[:16]
        self._files = {name: self._asset(name, body, files) for name, body in files.items()}

    @classmethod
    def load(cls, directory: Path) -> Assets:
        files = {
            path.relative_to(directory).as_posix(): path.read_bytes()
            for path in sorted(directory.rglob("*"))
            if path.is_file()
        }
        return cls(files)

    def _asset(self, name: str, body: bytes, files: dict[str, bytes]) -> Asset:
        def versioned(reference: re.Match[bytes]) -> bytes:
            target = reference[1].decode()
            return self.url(target).encode() if target in files else reference[0]

        if name.endswith(REWRITTEN):
            body = REFERENCE.sub(versioned, body)
        media_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if media_type.startswith("text/") or media_type.endswith(("javascript", "json")):
            media_type += "; charset=utf-8"
        etag = b'"' + hashlib.sha256(body).hexdigest()[:24].encode() + b'"'
        return Asset(body, media_type, etag)

    def url(self, name: str) -> str:
        """The versioned URL of a file, e.g. ``/static/watch.js?v=...``."""
        return f"{PREFIX}{name}?v={self.version}"

    def get(self, name: str) -> Asset | None:
        return self._files.get(name)

    def page(self, name: str) -> bytes:
        """A page's body with its references versioned (KeyError for a file that is not)."""
        return self._files[name].body


class AssetsFastPath:
    """ASGI middleware answering GET and HEAD of the files in `assets` (see the module doc)."""

    def __init__(self, app: ASGIApp, *, assets: Assets) -> None:
        self.app = app
        self.assets = assets

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        asset = None
        if (
            scope["type"] == "http"
            and scope["method"] in ("GET", "HEAD")
            and not scope.get("root_path")
            and scope["path"].startswith(PREFIX)
        ):
            asset = self.assets.get(scope["path"][len(PREFIX) :])
        if asset is None:
            await self.app(scope, receive, send)
            return
        await self._send(asset, scope, send)

    async def _send(self, asset: Asset, scope: Scope, send: Send) -> None:
        versioned = scope.get("query_string", b"") == f"v={self.assets.version}".encode()
        headers = [
            (b"etag", asset.etag),
            (b"cache-control", IMMUTABLE if versioned else NO_CACHE),
        ]
        if _matches(scope, asset.etag):
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        headers += [
            (b"content-type", asset.media_type.encode()),
            (b"content-length", str(len(asset.body)).encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        body = b"" if scope["method"] == "HEAD" else asset.body
        await send({"type": "http.response.body", "body": body})


def _matches(scope: Scope, etag: bytes) -> bool:
    for name, value in scope.get("headers", []):
        if name == b"if-none-match":
            return value.strip() == b"*" or etag in [tag.strip() for tag in value.split(b",")]
    return False
