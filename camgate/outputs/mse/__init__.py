"""MSE over WebSocket: the init segment, then every fMP4 fragment from the latest keyframe on.

`GopCache` holds what a joining viewer needs, `ClientQueue` is one viewer's bounded queue,
`MseSink` fans fragments out to them and `messages` renders the control messages. Nothing here
knows WebSockets: ``camgate.api.outputs.mse`` sends what a `ClientQueue` hands out.
"""

from __future__ import annotations

from camgate.outputs.mse.client import ClientEnd, ClientQueue, Message
from camgate.outputs.mse.gop import GopCache
from camgate.outputs.mse.live import MseOutput, MseSink, MseStats
from camgate.outputs.mse.messages import discontinuity_message, init_message, mime_type

__all__ = [
    "ClientEnd",
    "ClientQueue",
    "GopCache",
    "Message",
    "MseOutput",
    "MseSink",
    "MseStats",
    "discontinuity_message",
    "init_message",
    "mime_type",
]
