"""Cameras declared in a YAML file (CAMGATE_CONFIG), like `mediamtx.yml` or `go2rtc.yaml`, with
the API's field names:

    cameras:
      front-door:
        rtspUrl: rtsp://user:pass@192.168.1.20:554/stream1   # `url` is accepted too
        overrides: {audio: none}      # optional, as in the API
        enabled: true                 # optional; false declares the camera without streaming
        onDemand: false               # optional; true pulls it only while someone watches
    settings:                         # optional: global settings by their environment names
      MAX_CONCURRENT_STREAMS: 8       # an environment variable of the same name wins

The file is the source of truth for the cameras it declares (see `StreamManager.apply_file`).
Its settings are read once, at start-up (`load_settings_with_file`); a reload checks them again
but does not apply them. Parsing is pure: every problem is an `InvalidInput` naming the file,
the line and the field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from camgate.camera import CameraSpec, Overrides
from camgate.config import (
    NOT_IN_FILE,
    Settings,
    file_setting_errors,
    load_settings,
    setting_names,
)
from camgate.errors import InvalidInput

_URL_KEYS = ("rtspUrl", "url")
_CAMERA_KEYS = {*_URL_KEYS, "overrides", "enabled", "onDemand"}
_TOP_KEYS = ("cameras", "settings")


@dataclass(frozen=True)
class DeclaredCamera:
    spec: CameraSpec
    enabled: bool


@dataclass(frozen=True)
class CameraFile:
    """What a camera file declares: its cameras and its global settings (by variable name)."""

    cameras: list[DeclaredCamera] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)


def _fail(path: Path, node: yaml.Node, message: str) -> InvalidInput:
    return InvalidInput(f"{path}:{node.start_mark.line + 1}: {message}")


def _scalar(node: yaml.Node) -> object:
    return yaml.safe_load(yaml.serialize(node))


FLAGS = (("enabled", True), ("onDemand", False))


def _flag(
    path: Path, fields: dict[str, tuple[yaml.Node, yaml.Node]], key: str, where: str, default: bool
) -> bool:
    if key not in fields:
        return default
    value = _scalar(fields[key][1])
    if not isinstance(value, bool):
        raise _fail(path, fields[key][1], f"{where}.{key}: must be true or false")
    return value


def _parse_camera(path: Path, name: yaml.Node, body: yaml.Node) -> DeclaredCamera:
    camera_id = str(name.value)
    where = f"cameras.{camera_id}"
    if not isinstance(body, yaml.MappingNode):
        raise _fail(path, body, f"{where}: must be a mapping with at least 'url'")
    fields = {str(key.value): (key, value) for key, value in body.value}
    for key, (key_node, _) in fields.items():
        if key not in _CAMERA_KEYS:
            raise _fail(path, key_node, f"{where}.{key}: unknown field")
    given = [key for key in _URL_KEYS if key in fields]
    if not given:
        raise _fail(path, body, f"{where}.rtspUrl: required")
    if len(given) > 1:
        raise _fail(path, fields["url"][0], f"{where}: give rtspUrl or url, not both")
    url_key = given[0]
    url_node = fields[url_key][1]
    enabled, on_demand = (_flag(path, fields, key, where, default) for key, default in FLAGS)
    try:
        overrides = (
            Overrides.model_validate(_scalar(fields["overrides"][1]) or {})
            if "overrides" in fields
            else Overrides()
        )
    except (ValidationError, TypeError) as error:
        detail = error.errors()[0] if isinstance(error, ValidationError) else None
        field = f".{detail['loc'][0]}" if detail and detail["loc"] else ""
        message = detail["msg"].removeprefix("Value error, ") if detail else "must be a mapping"
        raise _fail(path, fields["overrides"][1], f"{where}.overrides{field}: {message}") from None
    try:
        spec = CameraSpec(camera_id, str(_scalar(url_node)), overrides, on_demand, "file")
    except InvalidInput as error:
        node = name if "cameraId" in str(error) else url_node
        field = "" if node is name else f".{url_key}"
        text = str(error).replace("rtspUrl", url_key)
        raise _fail(path, node, f"{where}{field}: {text}") from None
    return DeclaredCamera(spec, enabled)


def _parse_settings(path: Path, node: yaml.Node) -> dict[str, Any]:
    """The `settings:` mapping, every name known and every value valid."""
    if not isinstance(node, yaml.MappingNode):
        raise _fail(path, node, "settings: must be a mapping of setting name to value")
    known = setting_names()
    values: dict[str, Any] = {}
    lines: dict[str, yaml.Node] = {}
    for key, value in node.value:
        name = str(key.value)
        if name in NOT_IN_FILE:
            raise _fail(path, key, f"settings.{name}: cannot be set in the camera file itself")
        if name not in known:
            raise _fail(
                path,
                key,
                f"settings.{name}: unknown setting (use the environment variable names, "
                "e.g. MAX_CONCURRENT_STREAMS, as listed in the README)",
            )
        values[name], lines[name] = _scalar(value), value
    errors = file_setting_errors(values)
    for name in values:  # the first bad one in the file's order
        if name in errors:
            # The message says what is allowed; the value is not repeated (it may be a secret).
            raise _fail(path, lines[name], f"settings.{name}: {errors[name]}")
    return values


def read_camera_file(path: Path) -> CameraFile:
    """The cameras and settings declared in `path`; raises `InvalidInput` on the first problem."""
    try:
        root = yaml.compose(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise InvalidInput(f"{path}: cannot read the camera file: {error.strerror}") from None
    except yaml.MarkedYAMLError as error:
        line = error.problem_mark.line + 1 if error.problem_mark else 0
        raise InvalidInput(f"{path}:{line}: not valid YAML: {error.problem}") from None
    if root is None:
        return CameraFile()
    if not isinstance(root, yaml.MappingNode):
        raise _fail(path, root, "the file must be a mapping with a 'cameras' key")
    top = {str(key.value): (key, value) for key, value in root.value}
    for key, (key_node, _) in top.items():
        if key not in _TOP_KEYS:
            raise _fail(path, key_node, f"{key}: unknown field (expected 'cameras' or 'settings')")
    settings = _parse_settings(path, top["settings"][1]) if "settings" in top else {}
    if "cameras" not in top:
        return CameraFile([], settings)
    cameras = top["cameras"][1]
    if not isinstance(cameras, yaml.MappingNode):
        raise _fail(path, cameras, "cameras: must be a mapping of camera id to settings")
    declared = [_parse_camera(path, name, body) for name, body in cameras.value]
    return CameraFile(declared, settings)


def load_camera_file(path: Path) -> list[DeclaredCamera]:
    """The cameras declared in `path` (its settings checked too); raises `InvalidInput`."""
    return read_camera_file(path).cameras


def load_settings_with_file(**overrides: Any) -> Settings:
    """The settings from the command line (`overrides`), the environment and, below them,
    the `settings:` of the camera file CAMGATE_CONFIG names."""
    settings = load_settings(**overrides)
    if settings.config_file is None:
        return settings
    declared = read_camera_file(settings.config_file).settings
    return load_settings(declared, **overrides) if declared else settings
