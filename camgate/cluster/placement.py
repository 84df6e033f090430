"""Where cameras should run: pure rules over counts, with no database and no clock.

Every node takes at most its fair share (the cameras that should run, spread over the live
nodes, rounded up) and never more than MAX_CONCURRENT_STREAMS, so the least-loaded nodes are
the ones with room. A node well above the least-loaded one gives cameras away one at a time,
within a moves-per-minute budget, so a node that joins does not interrupt every viewer at once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass


def fair_share(wanted: int, live_nodes: int) -> int:
    """The most cameras one node should hold."""
    return math.ceil(wanted / max(1, live_nodes))


def claim_limit(mine: int, wanted: int, live_nodes: int, capacity: int) -> int:
    """How many free cameras this node may claim now."""
    return max(0, min(capacity, fair_share(wanted, live_nodes)) - mine)


def should_give_away(node_id: str, loads: Mapping[str, int], wanted: int) -> bool:
    """True when this node holds more than its share and another live node could take one
    without becoming the busier of the two (`loads`: cameras held per live node)."""
    mine = loads.get(node_id, 0)
    others = [count for node, count in loads.items() if node != node_id]
    if not others:
        return False
    return mine > fair_share(wanted, len(loads)) and mine - min(others) >= 2


@dataclass
class MoveBudget:
    """At most `per_minute` moves in any minute (a token bucket; the caller passes the time)."""

    per_minute: int
    tokens: float = 0.0
    last_s: float | None = None

    def take(self, now_s: float) -> bool:
        if self.per_minute <= 0:
            return False
        if self.last_s is None:
            self.tokens = 1.0
        else:
            refill = (now_s - self.last_s) * self.per_minute / 60
            self.tokens = min(float(self.per_minute), self.tokens + refill)
        self.last_s = now_s
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False
