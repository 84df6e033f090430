"""A STUN server for tests (RFC 5389 Binding only): it tells each client the address and port it
sees, which is what a WebRTC server asks a STUN server for its server-reflexive candidate.

It runs in a thread on 127.0.0.1 and counts the requests it answered.
"""

from __future__ import annotations

import socket
import threading
from types import TracebackType

from aioice import stun

_POLL_S = 0.2


class StunServer:
    def __init__(self, port: int) -> None:
        self.port = port
        self.seen: list[tuple[str, int]] = []
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.settimeout(_POLL_S)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="stun", daemon=True)

    @property
    def url(self) -> str:
        return f"stun:127.0.0.1:{self.port}"

    def __enter__(self) -> StunServer:
        self._sock.bind(("127.0.0.1", self.port))
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._stopping.set()
        self._thread.join(5)
        self._sock.close()

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                data, address = self._sock.recvfrom(2048)
            except TimeoutError:
                continue
            try:
                request = stun.parse_message(data)
            except ValueError:
                continue
            if request.message_method != stun.Method.BINDING:
                continue
            response = stun.Message(
                message_method=stun.Method.BINDING,
                message_class=stun.Class.RESPONSE,
                transaction_id=request.transaction_id,
            )
            response.attributes["XOR-MAPPED-ADDRESS"] = address
            response.add_fingerprint()
            self.seen.append(address)
            self._sock.sendto(bytes(response), address)
