"""The `camgate` command: `serve` runs the gateway, `probe URL` describes a camera."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys

from camgate import __version__
from camgate.errors import CamgateError

log = logging.getLogger("camgate")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="camgate", description=__doc__)
    parser.add_argument("--version", action="version", version=f"camgate {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the gateway (API, HLS, dashboard)")
    serve.add_argument("--host", help="address to listen on (CAMGATE_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (CAMGATE_PORT, default 8080)")
    serve.add_argument("--log-level", help="debug, info, warning or error (LOG_LEVEL)")
    probe = commands.add_parser("probe", help="print what a camera sends, then exit")
    probe.add_argument("url", help="rtsp:// or rtsps:// URL of the camera")
    probe.add_argument("--json", action="store_true", help="print the report as JSON")
    config = commands.add_parser("config", help="work with the camera file")
    config_commands = config.add_subparsers(dest="config_command", required=True)
    check = config_commands.add_parser("check", help="check a camera file without running it")
    check.add_argument("file", help="the YAML camera file (as for CAMGATE_CONFIG)")
    return parser


def _settings_from(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from camgate.camera_file import load_settings_with_file

    overrides = {}
    for name, alias in (
        ("host", "CAMGATE_HOST"),
        ("port", "CAMGATE_PORT"),
        ("log_level", "LOG_LEVEL"),
    ):
        value = getattr(args, name, None)
        if value is not None:
            overrides[alias] = value
    return load_settings_with_file(**overrides)


def _serve(args: argparse.Namespace) -> int:
    from camgate.api.app import create_app
    from camgate.api.auth import check_exposure
    from camgate.api.server import serve
    from camgate.ffmpeg import find_ffmpeg
    from camgate.instance import bind_listener, lock_data_dir
    from camgate.log import configure_logging
    from camgate.runtime import Runtime

    settings = _settings_from(args)
    configure_logging(
        settings.log_level,
        settings.log_format,
        settings.log_file,
        settings.log_file_max_bytes,
        settings.log_file_backups,
    )
    lock = lock_data_dir(settings.data_dir)  # held until the process ends
    app = create_app(settings, runtime=Runtime.open(settings))
    tokens = app.state.authorizer.tokens
    warning = check_exposure(settings.host, tokens.configured, settings.allow_insecure)
    if warning:
        log.warning("%s", warning)
    listener = bind_listener(settings.host, settings.port)
    roles = [role for role, _ in tokens.tokens]
    log.info(
        "camgate %s on http://%s:%d ffmpeg=%s data=%s auth=%s",
        __version__,
        settings.host,
        settings.port,
        find_ffmpeg(settings.ffmpeg_path),
        settings.data_dir,
        f"{roles.count('admin')} admin, {roles.count('viewer')} viewer tokens" if roles else "off",
    )
    serve(app, settings, listener)
    lock.close()
    return 0


def _probe(args: argparse.Namespace) -> int:
    from camgate import child
    from camgate.camera import CameraSpec, redact_text
    from camgate.ffmpeg import find_ffmpeg, parse_media_info, probe_command
    from camgate.probe_report import build_report, render_text

    settings = _settings_from(args)
    spec = CameraSpec("probe", args.url)
    command = probe_command(find_ffmpeg(settings.ffmpeg_path), spec, settings)

    async def run() -> str:
        process = await child.spawn(command.argv, command.stdin_bytes)
        _, stderr = await process.communicate()
        return stderr.decode("utf-8", "replace")

    try:
        text = asyncio.run(run())
    except child.SpawnError as error:
        print(f"camgate: {error}", file=sys.stderr)
        return 2
    info = parse_media_info(text)
    if info.video_codec is None:
        print(redact_text(text.strip(), spec.secrets), file=sys.stderr)
        return 1
    report = build_report(info, spec.redacted_url)
    print(json.dumps(report.as_json(), indent=2) if args.json else render_text(report))
    return 0


def _config_check(args: argparse.Namespace) -> int:
    from pathlib import Path

    from camgate.camera_file import read_camera_file

    read = read_camera_file(Path(args.file))  # raises InvalidInput with file:line: field
    declared = read.cameras
    if read.settings:
        print(f"settings: {', '.join(sorted(read.settings))} (the environment wins)")
    for camera in declared:
        mode = "on demand" if camera.spec.on_demand else "enabled" if camera.enabled else "off"
        print(f"{camera.spec.camera_id}: {camera.spec.redacted_url} ({mode})")
    print(f"{args.file}: {len(declared)} cameras, valid")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    commands = {"serve": _serve, "probe": _probe, "config": _config_check}
    try:
        return commands[args.command](args)
    except CamgateError as error:
        print(f"camgate: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
