"""A stream's states and the only transitions allowed between them (pure)."""

from __future__ import annotations

from enum import StrEnum


class StreamState(StrEnum):
    """stopped -> starting -> running -> backoff -> starting ...; stopped / failed until started."""

    STARTING = "starting"  # FFmpeg launched, nothing playable yet
    RUNNING = "running"  # playable media is flowing
    BACKOFF = "backoff"  # FFmpeg ended or stalled; waiting before the next attempt
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"  # gave up after RESTART_MAX_ATTEMPTS attempts


ACTIVE_STATES = frozenset(
    {StreamState.STARTING, StreamState.RUNNING, StreamState.BACKOFF, StreamState.STOPPING}
)

TRANSITIONS: dict[StreamState, frozenset[StreamState]] = {
    StreamState.STARTING: frozenset(
        {StreamState.RUNNING, StreamState.BACKOFF, StreamState.STOPPING, StreamState.FAILED}
    ),
    StreamState.RUNNING: frozenset({StreamState.BACKOFF, StreamState.STOPPING, StreamState.FAILED}),
    StreamState.BACKOFF: frozenset(
        {StreamState.STARTING, StreamState.STOPPING, StreamState.FAILED}
    ),
    StreamState.STOPPING: frozenset({StreamState.STOPPED}),
    StreamState.STOPPED: frozenset({StreamState.STARTING}),
    StreamState.FAILED: frozenset({StreamState.STARTING, StreamState.STOPPING}),
}


class InvalidTransition(RuntimeError):
    """A bug: code asked for a transition the state machine does not allow."""


def check_transition(current: StreamState, new: StreamState) -> StreamState:
    """Return `new` if current -> new is allowed, else raise `InvalidTransition`."""
    if new not in TRANSITIONS[current]:
        raise InvalidTransition(f"{current} -> {new}")
    return new


def backoff_delay_s(attempt: int, minimum_s: float, maximum_s: float, jitter: float) -> float:
    """Exponential delay for the given attempt (1-based) with jitter in [0, 1) scaling +-20 %."""
    base = min(maximum_s, minimum_s * 2 ** max(0, attempt - 1))
    return min(maximum_s, base * (0.8 + 0.4 * jitter))
