"""The HLS URLs answered below the web framework: the same answers, a fraction of the CPU.

An LL-HLS viewer asks ten times a second (a blocking playlist reload and a part, per 200 ms
part), so with many viewers the request rate, not the video, is what costs. Through FastAPI a
request took about 0.7 ms of CPU, most of it routing, dependency resolution and response
objects; this ASGI layer answers the four HLS GET URLs of a camera that plays on this node
itself, with the answers of `camgate.api.outputs.hls.HlsAnswers` (docs/benchmarks.md, viewer
fan-out, has the figures).

It runs inside `camgate.api.guard.RequestGuard` (both are the ASGI front of
`camgate.api.app.CamgateApp`, ahead of FastAPI), so the Host and Origin rules and the security
headers apply as to every request, and it applies the same access check as the routes
(`Authorizer.check` at `Access.PLAY`). Anything else goes on to the app unchanged, where the
routes answer exactly as before: other methods and paths, a request the access check refuses
(the app gives the 401 or 403), and a camera another node of the fleet runs (redirected or
relayed by `camgate.api.cluster`).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from fastapi import HTTPException, WebSocketException
from starlette.requests import Request

from camgate.api.auth import Access, Authorizer
from camgate.api.cluster import owner_url
from camgate.api.guard import ASGIApp, Receive, Scope, Send
from camgate.api.outputs.hls import Answer, HlsAnswers, ask_of, respond

# The paths of the routes in camgate.api.outputs.hls, as Starlette matches them ({name} is
# [^/]+, {name:int} is [0-9]+).
HLS_PATH = re.compile(
    r"/hls/(?P<camera>[^/]+)/(?:index\.m3u8|(?P<session>[^/]+)/"
    r"(?:init-(?P<init>[0-9]+)\.mp4|seg-(?P<seg>[0-9]+)\.m4s|part-(?P<part>[0-9]+)\.m4s))"
)


def runs_elsewhere(request: Request, camera_id: str) -> bool:
    """Whether another node of the fleet runs the camera (never on a single node)."""
    return owner_url(request, camera_id) is not None


class HlsFastPath:
    """ASGI middleware answering GETs of the HLS URLs with `answers` (see the module doc)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        answers: HlsAnswers,
        authorizer: Authorizer,
        runs_elsewhere: Callable[[Request, str], bool] = runs_elsewhere,
    ) -> None:
        self.app = app
        self.answers = answers
        self.authorizer = authorizer
        self.runs_elsewhere = runs_elsewhere

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = None
        if scope["type"] == "http" and scope["method"] == "GET" and not scope.get("root_path"):
            match = HLS_PATH.fullmatch(scope["path"])
        answer = await self._answer(scope, match) if match is not None else None
        if answer is None:
            await self.app(scope, receive, send)
            return
        await respond(answer)(scope, receive, send)  # the routes' response, without the routing

    async def _answer(self, scope: Scope, match: re.Match[str]) -> Answer | None:
        """The answer, or None for a request the app must answer itself."""
        camera_id = match["camera"]
        request = Request({**scope, "path_params": {"camera_id": camera_id}})
        try:
            self.authorizer.check(request, Access.PLAY)
        except (HTTPException, WebSocketException):
            return None  # the app's access check gives the refusal in its own words
        if self.runs_elsewhere(request, camera_id):
            return None  # the cluster's routing sends it to the node that runs the camera
        ask = ask_of(request, self.authorizer)
        answers = self.answers
        session = match["session"]
        if session is None:
            return await answers.playlist(camera_id, ask)
        if match["init"] is not None:
            return answers.init(camera_id, session, int(match["init"]), ask)
        if match["seg"] is not None:
            return answers.segment(camera_id, session, int(match["seg"]), ask)
        return await answers.part(camera_id, session, int(match["part"]), ask)
