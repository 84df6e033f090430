"""Log lines: key=value and JSON formats, camera id in context, credentials masked, file 0600."""

from __future__ import annotations

import json
import logging
import os
import stat

import pytest

from camgate.log import configure_logging


@pytest.fixture
def restore_logging():  # type: ignore[no-untyped-def]
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines_carry_camera_and_mask_credentials(restore_logging, capsys) -> None:  # type: ignore[no-untyped-def]
    configure_logging("info", "json")
    log = logging.getLogger("camgate.test")
    log.info(
        "ffmpeg: connecting to %s", "rtsp://admin:hunter22@10.0.0.5/live", extra={"camera": "door"}
    )
    log.debug("hidden at info level")
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["camera"] == "door" and record["level"] == "info"
    assert "hunter22" not in lines[0]
    assert "rtsp://***@10.0.0.5/live" in record["msg"]


def test_text_lines_are_key_value(restore_logging, capsys) -> None:  # type: ignore[no-untyped-def]
    configure_logging("warning", "text")
    logging.getLogger("camgate.test").warning("stream stalled", extra={"camera": "yard"})
    logging.getLogger("camgate.test").info("not shown")
    err = capsys.readouterr().err.strip()
    assert "level=warning" in err and "camera=yard" in err and 'msg="stream stalled"' in err
    assert "not shown" not in err


def test_log_file_rotates_at_its_size_limit(restore_logging, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "logs" / "camgate.log"
    configure_logging("info", "text", path, file_max_bytes=2000, file_backups=2)
    log = logging.getLogger("camgate.test")
    for n in range(200):
        log.info("line %d rtsp://u:secretpw@cam/x", n)
    files = sorted(p.name for p in path.parent.iterdir())
    assert files == ["camgate.log", "camgate.log.1", "camgate.log.2"]
    assert all(p.stat().st_size <= 2200 for p in path.parent.iterdir())
    assert not any("secretpw" in p.read_text() for p in path.parent.iterdir())


def test_log_file_and_its_backups_are_private_whatever_the_umask(restore_logging, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "logs" / "camgate.log"
    path.parent.mkdir()
    path.write_text("from an older version\n")
    path.chmod(0o644)  # as older versions left it
    old_umask = os.umask(0o000)
    try:
        configure_logging("info", "text", path, file_max_bytes=2000, file_backups=2)
        log = logging.getLogger("camgate.test")
        for n in range(200):
            log.info("line %d of a camera's story", n)
    finally:
        os.umask(old_umask)
    files = sorted(path.parent.iterdir())
    assert [p.name for p in files] == ["camgate.log", "camgate.log.1", "camgate.log.2"]
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in files} == {p.name: 0o600 for p in files}
