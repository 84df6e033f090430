"""The composition root: what one camgate process is made of, built in one place.

`Runtime.open(settings)` opens the desired-state store, reads the camera file and lists the
outputs every stream feeds; `camgate serve` and `create_app(settings)` (used alone, as tests and
embedders do) both build the app from it, so they cannot drift apart.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from camgate.camera_file import DeclaredCamera, load_camera_file
from camgate.config import Settings
from camgate.errors import InvalidInput
from camgate.ffmpeg import find_ffmpeg
from camgate.manager import Placement, StreamManager
from camgate.outputs.hls import HlsOutput
from camgate.outputs.mse import MseOutput
from camgate.outputs.sink import OutputFactory
from camgate.outputs.snapshot import SnapshotOutput
from camgate.outputs.webrtc import WebRtcOutput
from camgate.store import SqliteStore, Store

DATABASE_FILE = "camgate.db"
# What a node of a fleet needs beyond a single node: the database driver, and the clients that
# relay playback to the node running a camera (camgate.api.proxy).
CLUSTER_MODULES = ("psycopg", "httpx", "websockets")


def default_outputs(settings: Settings) -> tuple[OutputFactory, ...]:
    """Every output a camgate server offers for each camera."""
    snapshot = SnapshotOutput(find_ffmpeg(settings.ffmpeg_path))
    return (HlsOutput(), MseOutput(), snapshot, WebRtcOutput())


@dataclass
class Runtime:
    settings: Settings
    store: Store
    declared: list[DeclaredCamera] | None  # None: no camera file
    outputs: tuple[OutputFactory, ...]
    placement: Placement | None = None

    @classmethod
    def open(
        cls,
        settings: Settings,
        *,
        store: Store | None = None,
        declared: list[DeclaredCamera] | None = None,
    ) -> Runtime:
        """Open the camera database and read the camera file, so that a corrupt database or a
        bad file stops start-up with a clear message instead of a server that starts empty.
        `store` and `declared` replace them (tests, library use)."""
        if declared is None:
            file = settings.config_file
            declared = load_camera_file(file) if file else None
        if store is None and settings.database_url:
            store, placement = open_cluster(settings)
            return cls(settings, store, declared, default_outputs(settings), placement)
        store = store or SqliteStore(settings.data_dir / DATABASE_FILE)
        return cls(settings, store, declared, default_outputs(settings))

    def manager(self) -> StreamManager:
        return StreamManager(
            self.settings, store=self.store, outputs=self.outputs, placement=self.placement
        )


def open_cluster(settings: Settings) -> tuple[Store, Placement]:
    """CAMGATE_DATABASE_URL: the PostgreSQL store and this node's leases (docs/cluster.md)."""
    if not settings.viewer_secret:
        raise InvalidInput(
            "CAMGATE_DATABASE_URL needs CAMGATE_VIEWER_SECRET, the same on every node, so that "
            "a viewer URL signed by one node plays on the node that runs the camera"
        )
    missing = [name for name in CLUSTER_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise InvalidInput(
            f"CAMGATE_DATABASE_URL needs {', '.join(missing)}: pip install 'camgate[cluster]'"
        )
    # Imported here: a single node needs neither PostgreSQL nor its driver.
    from camgate.cluster.node import ClusterNode
    from camgate.cluster.postgres import PostgresStore

    store = PostgresStore(settings.database_url)
    return store, ClusterNode(settings, store)
