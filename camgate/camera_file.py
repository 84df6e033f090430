"""Cameras declared in a YAML file (CAMGATE_CONFIG), like `mediamtx.yml` or `go2rtc.yaml`, with
the API's field names:

    cameras:
      front-door:
        rtspUrl: rtsp://user:pass@192.168.1.20:554/stream1   # `url` is accepted too
        overrides: {audio: none}      # optional, as in the API
        enabled: true                 # optional; false declares the camera without streaming
        onDemand: false               # optional; true pulls it only while someone watches

The file is the source of truth for the cameras it declares (see `StreamManager.apply_file`).
Pure parsing: every problem is an `InvalidInput` naming the file, the line and the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import ValidationError

from camgate.camera import CameraSpec, Overrides
from camgate.errors import InvalidInput

_URL_KEYS = ("rtspUrl", "url")
_CAMERA_KEYS = {*_URL_KEYS, "overrides", "enabled", "onDemand"}


@dataclass(frozen=True)
class DeclaredCamera:
    spec: CameraSpec
    enabled: bool


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


def load_camera_file(path: Path) -> list[DeclaredCamera]:
    """The cameras declared in `path`; raises `InvalidInput` on the first problem."""
    try:
        root = yaml.compose(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise InvalidInput(f"{path}: cannot read the camera file: {error.strerror}") from None
    except yaml.MarkedYAMLError as error:
        line = error.problem_mark.line + 1 if error.problem_mark else 0
        raise InvalidInput(f"{path}:{line}: not valid YAML: {error.problem}") from None
    if root is None:
        return []
    if not isinstance(root, yaml.MappingNode):
        raise _fail(path, root, "the file must be a mapping with a 'cameras' key")
    top = {str(key.value): (key, value) for key, value in root.value}
    for key, (key_node, _) in top.items():
        if key != "cameras":
            raise _fail(path, key_node, f"{key}: unknown field (expected 'cameras')")
    if "cameras" not in top:
        return []
    cameras = top["cameras"][1]
    if not isinstance(cameras, yaml.MappingNode):
        raise _fail(path, cameras, "cameras: must be a mapping of camera id to settings")
    return [_parse_camera(path, name, body) for name, body in cameras.value]
