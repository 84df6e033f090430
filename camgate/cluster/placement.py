"""Where cameras should run: pure rules over counts, with no database and no clock.

Every node takes at most its fair share (the cameras that should run, spread over the live
nodes, rounded up) and never more than MAX_CONCURRENT_STREAMS, so the least-loaded nodes are
the ones with room. A node well above the least-loaded one gives cameras away one at a time,
at most CAMGATE_REBALANCE_MOVES per CAMGATE_REBALANCE_INTERVAL, so a node that joins does not
interrupt every viewer at once.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field


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
    """At most `moves` moves in any `interval_s` (a sliding window; the caller passes the time),
    so the cameras one node hands over never come in a burst, however long it waited."""

    moves: int
    interval_s: float
    recent_s: deque[float] = field(default_factory=deque)

    def take(self, now_s: float) -> bool:
        if self.moves <= 0:
            return False
        while self.recent_s and now_s - self.recent_s[0] >= self.interval_s:
            self.recent_s.popleft()
        if len(self.recent_s) >= self.moves:
            return False
        self.recent_s.append(now_s)
        return True
