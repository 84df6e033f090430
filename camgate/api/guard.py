"""The request guard: browser-attack defences and request limits, before any route runs.

- Host allow-list (DNS rebinding): a page on a rebound name reaches camgate with a Host header
  that names it; IP literals cannot be rebound and are always allowed.
- Origin (cross-site request forgery, cross-site WebSocket): a state-changing request or a
  WebSocket from another web origin is refused unless CAMGATE_CORS_ORIGINS allows it.
- Content type: a POST/PUT/PATCH without a valid bearer token must be `application/json` (or
  carry no body and no type at all), which an HTML form cannot send; under `/whep/` SDP offers
  and trickle-ICE fragments too (RFC 9725), which no form sends either.
- Body size and time: bodies over MAX_BODY_BYTES are refused before they are read, and a body
  that trickles in is cut off.
- Security headers on every response (no framing, a strict content security policy).

It answers with the API's JSON envelope and never echoes secrets.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import json
import socket
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

from camgate.api.auth import Authorizer

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost")
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
BODY_METHODS = {"POST", "PUT", "PATCH"}
JSON_TYPES = {"application/json"}
WHEP_PREFIX = "/whep/"
WHEP_TYPES = {"application/sdp", "application/trickle-ice-sdpfrag"}
BODY_TIMEOUT_S = 10.0
UNSUPPORTED = 415, "send the request as Content-Type: application/json"
STRICT_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; worker-src 'self' blob:; connect-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)



def split_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def host_name(host_header: str) -> str:
    """The name of a Host header value, without port or IPv6 brackets, lower case."""
    value = host_header.strip().lower()
    if value.startswith("["):
        return value[1:].partition("]")[0]
    return value.rpartition(":")[0] if value.count(":") == 1 else value


def media_type_of(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


IP_LITERAL_MAX = 64  # the longest IPv6 text with a zone is shorter; longer names are not IPs


def is_ip_literal(name: str) -> bool:
    return len(name) <= IP_LITERAL_MAX and _parses_as_ip(name)


@functools.lru_cache(maxsize=256)  # once per Host name, not on every request
def _parses_as_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def default_allowed_hosts(bound_host: str) -> list[str]:
    """Localhost names, the machine's own name, and the name camgate was told to bind."""
    names = [*LOCAL_NAMES, socket.gethostname().lower()]
    if bound_host and not is_ip_literal(bound_host) and bound_host not in ("0.0.0.0", "::"):
        names.append(bound_host.lower())
    return names


def origin_key(origin: str) -> str | None:
    """`scheme://host:port` of an Origin header (default ports made explicit), or None."""
    try:
        parts = urlsplit(origin.strip().lower())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https", "ws", "wss") or not parts.hostname:
        return None
    port = port or (443 if parts.scheme in ("https", "wss") else 80)
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{host}:{port}"


class RequestGuard:
    """ASGI middleware enforcing the rules in the module docstring."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        authorizer: Authorizer,
        allowed_hosts: list[str],
        cors_origins: list[str],
        max_body_bytes: int,
    ) -> None:
        self.app = app
        self.authorizer = authorizer
        self.allowed_hosts = {name.lower() for name in allowed_hosts}
        self.cors_origins = {key for o in cors_origins if (key := origin_key(o))}
        self.any_origin = "*" in cors_origins
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            await self._refuse(scope, receive, send, *refusal)
            return
        if scope["type"] == "http" and scope["method"] in BODY_METHODS:
            body = await self._read_body(receive, headers)
            # An HTML form always sends a Content-Type (urlencoded, multipart or text/plain); a
            # POST with neither type nor body (curl -X POST .../stop) cannot come from a form.
            if body and "content-type" not in headers and not self._json_or_token(None, headers):
                body = UNSUPPORTED
            if isinstance(body, tuple):
                await self._refuse(scope, receive, send, *body)
                return
            receive = _replay(body, receive)
        await self.app(scope, receive, _with_security_headers(scope, send))

    def _refusal(self, scope: Scope, headers: dict[str, str]) -> tuple[int, str] | None:
        host = headers.get("host", "")
        name = host_name(host)
        if not self._host_allowed(name):
            shown = name[:80]
            return 403, f"Host '{shown}' is not served here: add it to CAMGATE_ALLOWED_HOSTS"
        method = scope.get("method", "GET")
        if scope["type"] == "websocket" or method in UNSAFE_METHODS:
            origin = headers.get("origin")
            if origin is not None and not self._origin_allowed(origin, host, scope):
                return 403, "cross-origin request refused (Origin does not match this server)"
            if origin is None and headers.get("sec-fetch-site") == "cross-site":
                return 403, "cross-site request refused"
        if scope["type"] == "http" and method in BODY_METHODS:
            content_type = headers.get("content-type")
            if content_type is not None and not self._type_allowed(scope, content_type, headers):
                return UNSUPPORTED
        return None

    def _type_allowed(self, scope: Scope, content_type: str, headers: dict[str, str]) -> bool:
        whep = scope.get("path", "").startswith(WHEP_PREFIX)
        if whep and media_type_of(content_type) in WHEP_TYPES:
            return True
        return self._json_or_token(content_type, headers)

    def _json_or_token(self, content_type: str | None, headers: dict[str, str]) -> bool:
        media_type = media_type_of(content_type)
        return media_type in JSON_TYPES or self.authorizer.role(headers) is not None

    def _host_allowed(self, name: str) -> bool:
        # No Host at all (HTTP/1.0) cannot come from a rebinding browser page.
        if not name or "*" in self.allowed_hosts:
            return True
        return is_ip_literal(name) or name in self.allowed_hosts

    def _origin_allowed(self, origin: str, host: str, scope: Scope) -> bool:
        key = origin_key(origin)
        if key is None:
            return False  # includes "null" (sandboxed frames, file:// pages)
        if self.any_origin or key in self.cors_origins:
            return True
        scheme = "https" if scope.get("scheme") in ("https", "wss") else "http"
        return key == origin_key(f"{scheme}://{host}")

    async def _read_body(
        self, receive: Receive, headers: dict[str, str]
    ) -> bytes | tuple[int, str]:
        too_large = 413, f"request body larger than {self.max_body_bytes} bytes"
        length = headers.get("content-length", "")
        if length.isascii() and length.isdigit() and int(length) > self.max_body_bytes:
            return too_large
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(BODY_TIMEOUT_S):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return 400, "client went away"
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > self.max_body_bytes:
                        return too_large
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        return b"".join(chunks)
        except TimeoutError:
            return 408, f"request body not received within {BODY_TIMEOUT_S:g}s"

    async def _refuse(
        self, scope: Scope, receive: Receive, send: Send, status: int, message: str
    ) -> None:
        if scope["type"] == "websocket":
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": 1008, "reason": message[:120]})
            return
        body = json.dumps({"success": False, "error": message}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        send_secure = _with_security_headers(scope, send)
        await send_secure({"type": "http.response.start", "status": status, "headers": headers})
        await send_secure({"type": "http.response.body", "body": body})


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that gives the app the body already read, then waits on the real one."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _with_security_headers(scope: Scope, send: Send) -> Send:
    csp = STRICT_CSP
    extra = [
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"no-referrer"),
        (b"content-security-policy", csp.encode()),
    ]

    async def secured(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", []), *extra]
        await send(message)

    return secured
