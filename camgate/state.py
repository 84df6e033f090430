"""A stream's states and the only transitions allowed between them (pure)."""

from __future__ import annotations

from enum import StrEnum


class StreamState(StrEnum):
    """stopped -> starting -> running -> backoff -> starting ...; stopped / failed until started.
    An on-demand camera waits in idle (started, not pulled) until a viewer asks for it, and goes
    back to idle when nobody watches."""

    IDLE = "idle"  # on-demand: wanted, but not pulled while nobody watches
    STARTING = "starting"  # FFmpeg launched, nothing playable yet
    RUNNING = "running"  # playable media is flowing
    BACKOFF = "backoff"  # FFmpeg ended or stalled; waiting before the next attempt
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"  # gave up after RESTART_MAX_ATTEMPTS attempts


# Pulling a camera: these count against MAX_CONCURRENT_STREAMS.
PULLING_STATES = frozenset(
    {StreamState.STARTING, StreamState.RUNNING, StreamState.BACKOFF, StreamState.STOPPING}
)
# Started (wanted on): a second start is refused.
ACTIVE_STATES = PULLING_STATES | {StreamState.IDLE}

_S = StreamState
TRANSITIONS: dict[StreamState, frozenset[StreamState]] = {
    _S.IDLE: frozenset({_S.STARTING, _S.STOPPING}),
    _S.STARTING: frozenset({_S.RUNNING, _S.BACKOFF, _S.STOPPING, _S.FAILED, _S.IDLE}),
    _S.RUNNING: frozenset({_S.BACKOFF, _S.STOPPING, _S.FAILED, _S.IDLE}),
    _S.BACKOFF: frozenset({_S.STARTING, _S.STOPPING, _S.FAILED, _S.IDLE}),
    _S.STOPPING: frozenset({_S.STOPPED}),
    _S.STOPPED: frozenset({_S.STARTING, _S.IDLE}),
    _S.FAILED: frozenset({_S.STARTING, _S.STOPPING, _S.IDLE}),
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
