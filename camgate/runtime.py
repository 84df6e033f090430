"""The composition root: what one camgate process is made of, built in one place.

`Runtime.open(settings)` opens the desired-state store, reads the camera file and lists the
outputs every stream feeds; `camgate serve` and `create_app(settings)` (used alone, as tests and
embedders do) both build the app from it, so they cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from camgate.camera_file import DeclaredCamera, load_camera_file
from camgate.config import Settings
from camgate.ffmpeg import find_ffmpeg
from camgate.manager import StreamManager
from camgate.outputs.hls import HlsOutput
from camgate.outputs.mse import MseOutput
from camgate.outputs.sink import OutputFactory
from camgate.outputs.snapshot import SnapshotOutput
from camgate.store import SqliteStore, Store

DATABASE_FILE = "camgate.db"


def default_outputs(settings: Settings) -> tuple[OutputFactory, ...]:
    """Every output a camgate server offers for each camera."""
    return (HlsOutput(), MseOutput(), SnapshotOutput(find_ffmpeg(settings.ffmpeg_path)))


@dataclass
class Runtime:
    settings: Settings
    store: Store
    declared: list[DeclaredCamera]
    outputs: tuple[OutputFactory, ...]

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
            declared = load_camera_file(file) if file else []
        store = store or SqliteStore(settings.data_dir / DATABASE_FILE)
        return cls(settings, store, declared, default_outputs(settings))

    def manager(self) -> StreamManager:
        return StreamManager(self.settings, store=self.store, outputs=self.outputs)
