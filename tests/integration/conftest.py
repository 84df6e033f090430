"""Fixtures that start real processes (test camera, camgate server) and always clean them up."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.camera import RtspCamera
from tests.support.ports import free_port
from tests.support.server import CamgateServer


@pytest.fixture
def camera() -> Iterator[RtspCamera]:
    """A 640x360 25 fps H.264 camera with a 2 s GOP on its own port."""
    with RtspCamera(port=free_port(), gop_s=2.0) as cam:
        yield cam


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., CamgateServer]]:
    """Starts camgate servers with extra environment; every one is stopped at the end."""
    servers: list[CamgateServer] = []

    def make(data_dir: Path | None = None, **env: str) -> CamgateServer:
        server = CamgateServer(free_port(), data_dir or tmp_path / f"data{len(servers)}", env)
        servers.append(server)
        return server.start()

    yield make
    for server in servers:
        server.stop()
        server.client.close()


@pytest.fixture
def server(make_server: Callable[..., CamgateServer]) -> CamgateServer:
    return make_server()
