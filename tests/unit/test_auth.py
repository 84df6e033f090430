"""Tokens, viewer-URL signatures and the exposure rule: pure logic, no server."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from camgate.api.auth import (
    Role,
    TokenSet,
    Verdict,
    ViewerSigner,
    check_exposure,
    is_loopback,
    load_or_create_secret,
    parse_tokens,
)
from camgate.api.guard import host_name, origin_key
from camgate.errors import InvalidInput

ADMIN = "a" * 24
VIEWER = "v" * 24


def test_token_syntax_roles_and_comments() -> None:
    parsed = parse_tokens(f"admin:{ADMIN}, viewer:{VIEWER}\n# a comment\n{'b' * 20}", "X")
    assert parsed == [(Role.ADMIN, ADMIN), (Role.VIEWER, VIEWER), (Role.ADMIN, "b" * 20)]


@pytest.mark.parametrize("text", ["short", "viewer:tiny", f"admin:{'a' * 10} b{'c' * 10}"])
def test_weak_or_malformed_tokens_are_refused_without_echoing_them(text: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_tokens(text, "CAMGATE_API_TOKENS")
    assert "CAMGATE_API_TOKENS" in str(caught.value)
    assert text.split(":")[-1] not in str(caught.value)


def test_role_of_is_exact() -> None:
    tokens = TokenSet(f"admin:{ADMIN},viewer:{VIEWER}", None)
    assert tokens.role_of(ADMIN) is Role.ADMIN
    assert tokens.role_of(VIEWER) is Role.VIEWER
    assert tokens.role_of(ADMIN[:-1]) is None
    assert tokens.role_of(ADMIN + "x") is None
    assert tokens.role_of("") is None
    assert not TokenSet("", None).configured


def test_token_file_is_read_again_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text(f"viewer:{VIEWER}\n")
    tokens = TokenSet("", path)
    assert tokens.role_of(VIEWER) is Role.VIEWER
    path.write_text(f"admin:{ADMIN}\n")
    os.utime(path, (time.time() + 5, time.time() + 5))
    tokens._checked_at = 0.0  # skip the once-a-second pacing
    assert tokens.role_of(ADMIN) is Role.ADMIN
    assert tokens.role_of(VIEWER) is None


def test_unreadable_token_file_stops_start_up(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="CAMGATE_API_TOKENS_FILE"):
        TokenSet("", tmp_path / "missing")


def test_signatures_bind_camera_and_expiry() -> None:
    signer = ViewerSigner(b"k" * 32)
    exp = int(time.time()) + 60
    sig = signer.signature("door", exp)
    assert signer.verify("door", str(exp), sig) is Verdict.VALID
    assert signer.verify("yard", str(exp), sig) is Verdict.INVALID
    assert signer.verify("door", str(exp + 1), sig) is Verdict.INVALID
    tampered = sig[:-1] + ("B" if sig.endswith("A") else "A")  # never the signature itself
    assert signer.verify("door", str(exp), tampered) is Verdict.INVALID
    assert ViewerSigner(b"x" * 32).verify("door", str(exp), sig) is Verdict.INVALID
    assert signer.verify("door", "²", sig) is Verdict.INVALID
    old = int(time.time()) - 1
    assert signer.verify("door", str(old), signer.signature("door", old)) is Verdict.EXPIRED


def test_secret_file_is_private_and_stable(tmp_path: Path) -> None:
    first = load_or_create_secret(tmp_path / "data")
    assert stat.S_IMODE((tmp_path / "data" / "viewer-secret").stat().st_mode) == 0o600
    assert load_or_create_secret(tmp_path / "data") == first
    assert len(first) >= 32


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_loopback_needs_no_token(host: str) -> None:
    assert is_loopback(host)
    assert check_exposure(host, tokens_configured=False, allow_insecure=False) is None


def test_other_addresses_need_a_token_or_an_explicit_override() -> None:
    with pytest.raises(InvalidInput, match="CAMGATE_API_TOKENS"):
        check_exposure("0.0.0.0", tokens_configured=False, allow_insecure=False)
    assert check_exposure("0.0.0.0", tokens_configured=True, allow_insecure=False) is None
    warning = check_exposure("0.0.0.0", tokens_configured=False, allow_insecure=True)
    assert warning and "WITHOUT authentication" in warning


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("camgate.lan:8080", "camgate.lan"),
        ("LOCALHOST", "localhost"),
        ("[::1]:8080", "::1"),
        ("10.0.0.5", "10.0.0.5"),
    ],
)
def test_host_names(header: str, name: str) -> None:
    assert host_name(header) == name


def test_origin_keys_make_default_ports_explicit() -> None:
    assert origin_key("http://127.0.0.1") == origin_key("http://127.0.0.1:80")
    assert origin_key("https://nvr.example") == "nvr.example:443"
    assert origin_key("null") is None
    assert origin_key("file://") is None
