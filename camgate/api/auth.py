"""Who may do what: bearer tokens (admin or viewer) and signed viewer URLs.

Every API route declares its access level with `@access(...)`; a route that declares nothing
needs an admin token, so a new route cannot be left open by accident. With no token configured
camgate runs open, as before, but only on loopback (the CLI refuses anything else). Tokens are
compared in constant time and never logged; a signature is an HMAC over camera id and expiry.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

from fastapi import HTTPException, WebSocketException
from starlette.requests import HTTPConnection

from camgate.config import Settings
from camgate.errors import InvalidInput

MIN_TOKEN_LENGTH = 16
SECRET_FILE = "viewer-secret"
SECRET_BYTES = 32
FILE_CHECK_INTERVAL_S = 1.0
ACCESS_ATTRIBUTE = "__camgate_access__"
SIGNATURE_PARAMS = ("exp", "sig")
WS_POLICY_VIOLATION = 1008  # RFC 6455 7.4.1


class Role(StrEnum):
    VIEWER = "viewer"
    ADMIN = "admin"


class Access(StrEnum):
    """What a route needs: nothing, a viewer token, a viewer token or a signed URL, an admin."""

    PUBLIC = "public"
    VIEWER = "viewer"
    PLAY = "play"
    ADMIN = "admin"


F = TypeVar("F", bound=Callable[..., Any])


def access(level: Access) -> Callable[[F], F]:
    """Mark a route endpoint with the access it needs (the default is `Access.ADMIN`)."""

    def mark(endpoint: F) -> F:
        setattr(endpoint, ACCESS_ATTRIBUTE, level)
        return endpoint

    return mark


def access_of(endpoint: object) -> Access:
    level = getattr(endpoint, ACCESS_ATTRIBUTE, Access.ADMIN)
    return level if isinstance(level, Access) else Access.ADMIN


def parse_tokens(text: str, source: str) -> list[tuple[Role, str]]:
    """`admin:TOKEN`, `viewer:TOKEN` or a bare (admin) TOKEN, separated by commas or lines.
    Lines starting with `#` are comments. Raises `InvalidInput` naming `source`, never the
    token itself."""
    found: list[tuple[Role, str]] = []
    for number, raw in enumerate(text.replace(",", "\n").splitlines(), start=1):
        item = raw.strip()
        if not item or item.startswith("#"):
            continue
        prefix, sep, rest = item.partition(":")
        role, token = Role.ADMIN, item
        if sep and prefix.strip().lower() in (Role.ADMIN, Role.VIEWER):
            role, token = Role(prefix.strip().lower()), rest.strip()
        if len(token) < MIN_TOKEN_LENGTH or any(c.isspace() for c in token):
            raise InvalidInput(
                f"invalid setting {source}: token {number} must be at least {MIN_TOKEN_LENGTH} "
                "characters without spaces (make one with: openssl rand -hex 24)"
            )
        found.append((role, token))
    return found


class TokenSet:
    """The configured tokens: from CAMGATE_API_TOKENS and CAMGATE_API_TOKENS_FILE. The file is
    read again when it changes, so tokens can be rotated without a restart."""

    def __init__(self, inline: str, file: Path | None) -> None:
        self._inline = parse_tokens(inline, "CAMGATE_API_TOKENS")
        self._file = file
        self._file_stamp: tuple[float, int] | None = None
        self._file_tokens: list[tuple[Role, str]] = []
        self._checked_at = 0.0
        if file is not None:
            self._reload(force=True)

    def _reload(self, force: bool = False) -> None:
        assert self._file is not None
        now = time.monotonic()
        if not force and now - self._checked_at < FILE_CHECK_INTERVAL_S:
            return
        self._checked_at = now
        try:
            stat = self._file.stat()
            stamp = (stat.st_mtime, stat.st_size)
            if stamp != self._file_stamp or force:
                text = self._file.read_text(encoding="utf-8")
                self._file_tokens = parse_tokens(text, f"CAMGATE_API_TOKENS_FILE ({self._file})")
                self._file_stamp = stamp
        except OSError as error:
            if force:
                raise InvalidInput(
                    f"invalid setting CAMGATE_API_TOKENS_FILE={str(self._file)!r}: "
                    f"cannot read it ({error.strerror})"
                ) from None
        except InvalidInput:
            if force:
                raise
            # A half-written file during rotation: keep the tokens we had.

    @property
    def tokens(self) -> list[tuple[Role, str]]:
        if self._file is not None:
            self._reload()
        return [*self._inline, *self._file_tokens]

    @property
    def configured(self) -> bool:
        return bool(self.tokens)

    def role_of(self, token: str) -> Role | None:
        """The role of `token`; every configured token is compared, in constant time."""
        given = token.encode("utf-8", "surrogateescape")
        best: Role | None = None
        for role, known in self.tokens:
            if hmac.compare_digest(given, known.encode("utf-8")) and best is not Role.ADMIN:
                best = role
        return best


def bearer_token(headers: Any) -> str | None:
    """The token of an `Authorization: Bearer ...` header, if there is one."""
    value = headers.get("authorization")
    if not value:
        return None
    scheme, _, token = value.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def load_or_create_secret(data_dir: Path) -> bytes:
    """The viewer-URL signing key, kept 0600 in the data directory (made on first use)."""
    path = data_dir / SECRET_FILE
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        secret = path.read_bytes().strip()
        if len(secret) < SECRET_BYTES:
            raise InvalidInput(f"{path}: the viewer-URL secret is too short; delete it") from None
        os.chmod(path, 0o600)
        return secret
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_hex(SECRET_BYTES))
    return path.read_bytes().strip()


class Verdict(StrEnum):
    VALID = "valid"
    EXPIRED = "expired"
    INVALID = "invalid"


@dataclass(frozen=True)
class ViewerSigner:
    """Signs and checks viewer URLs: `exp` (unix seconds) and `sig` (HMAC-SHA256, base64url)."""

    key: bytes

    def signature(self, camera_id: str, expires_at: int) -> str:
        message = f"camgate-view-v1\n{camera_id}\n{expires_at}".encode()
        digest = hmac.new(self.key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    def query(self, camera_id: str, expires_at: int) -> str:
        return urlencode({"exp": expires_at, "sig": self.signature(camera_id, expires_at)})

    def verify(self, camera_id: str, exp: str, sig: str, now: float | None = None) -> Verdict:
        if not (exp.isascii() and exp.isdigit() and len(exp) <= 12) or len(sig) > 64:
            return Verdict.INVALID
        expected = self.signature(camera_id, int(exp))
        if not hmac.compare_digest(expected.encode(), sig.encode("utf-8", "surrogateescape")):
            return Verdict.INVALID
        now = time.time() if now is None else now
        return Verdict.EXPIRED if int(exp) < now else Verdict.VALID


class Authorizer:
    """Applies a route's access level to a request; raises HTTP 401/403 in the API envelope."""

    def __init__(self, tokens: TokenSet, signer: ViewerSigner) -> None:
        self.tokens = tokens
        self.signer = signer

    @classmethod
    def from_settings(cls, settings: Settings) -> Authorizer:
        tokens = TokenSet(settings.api_tokens, settings.api_tokens_file)
        key = settings.viewer_secret.encode() or load_or_create_secret(settings.data_dir)
        return cls(tokens, ViewerSigner(key))

    def role(self, headers: Any) -> Role | None:
        token = bearer_token(headers)
        return self.tokens.role_of(token) if token else None

    def check(self, request: HTTPConnection, level: Access) -> None:
        if level is Access.PUBLIC:
            return
        camera_id = request.path_params.get("camera_id")
        if level is Access.PLAY and isinstance(camera_id, str) and self._signed(request, camera_id):
            return
        if not self.tokens.configured:
            return  # open mode: only ever on loopback (see camgate.cli)
        token = bearer_token(request.headers)
        if token is None:
            raise refusal(
                request,
                401,
                "authentication required: send 'Authorization: Bearer <token>'"
                + (" or use a signed viewer URL" if level is Access.PLAY else ""),
                {"WWW-Authenticate": 'Bearer realm="camgate"'},
            )
        role = self.tokens.role_of(token)
        if role is None:
            raise refusal(
                request, 401, "invalid token", {"WWW-Authenticate": 'Bearer error="invalid_token"'}
            )
        if level is Access.ADMIN and role is not Role.ADMIN:
            raise refusal(request, 403, "this needs an admin token (a viewer token may only read)")

    def _signed(self, request: HTTPConnection, camera_id: str) -> bool:
        """True for a valid signature; 403 for a bad one; False when the URL is not signed."""
        raw: bytes = request.scope.get("query_string", b"")
        if b"exp" not in raw and b"sig" not in raw and b"%" not in raw:
            return False  # no such parameter, however encoded: skip parsing the query
        exp, sig = (request.query_params.get(name) for name in SIGNATURE_PARAMS)
        if exp is None and sig is None:
            return False
        verdict = self.signer.verify(camera_id, exp or "", sig or "")
        if verdict is Verdict.EXPIRED:
            raise refusal(request, 403, "this viewer URL has expired: ask for a new one")
        if verdict is Verdict.INVALID:
            raise refusal(request, 403, "invalid viewer URL signature")
        request.state.signed_query = self.signer.query(camera_id, int(exp or 0))
        return True


def refusal(
    connection: HTTPConnection, status: int, message: str, headers: dict[str, str] | None = None
) -> Exception:
    """The error for a refused request: HTTP 401/403, or closing a WebSocket (policy)."""
    if connection.scope["type"] == "websocket":
        return WebSocketException(code=WS_POLICY_VIOLATION, reason=message[:120])
    return HTTPException(status, message, headers=headers)


async def authorize(request: HTTPConnection) -> None:
    """App-wide dependency: the access level of the matched route, enforced."""
    level = access_of(request.scope.get("endpoint"))
    authorizer: Authorizer = request.app.state.authorizer
    authorizer.check(request, level)


def is_loopback(host: str) -> bool:
    name = host.strip().strip("[]").lower()
    if name in ("localhost", "localhost.localdomain", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, tokens_configured: bool, allow_insecure: bool) -> str | None:
    """Refuse (InvalidInput) to serve an open API beyond loopback; a warning when overridden."""
    if tokens_configured or is_loopback(host):
        return None
    if not allow_insecure:
        raise InvalidInput(
            f"refusing to listen on {host} without an API token: set "
            "CAMGATE_API_TOKENS=admin:<token> (make one with: openssl rand -hex 24) or "
            "CAMGATE_API_TOKENS_FILE, or CAMGATE_ALLOW_INSECURE=1 to run open anyway"
        )
    return (
        f"listening on {host} WITHOUT authentication (CAMGATE_ALLOW_INSECURE=1): anyone who "
        "can reach this port can control every camera and watch every stream"
    )
