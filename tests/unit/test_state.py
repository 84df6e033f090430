"""The stream state machine and the restart backoff."""

from __future__ import annotations

import pytest

from camgate.state import InvalidTransition, StreamState, backoff_delay_s, check_transition


def test_normal_life_of_a_stream_is_allowed() -> None:
    path = [
        StreamState.STOPPED,
        StreamState.STARTING,
        StreamState.RUNNING,
        StreamState.BACKOFF,
        StreamState.STARTING,
        StreamState.RUNNING,
        StreamState.STOPPING,
        StreamState.STOPPED,
        StreamState.STARTING,
    ]
    for current, new in zip(path, path[1:], strict=False):
        assert check_transition(current, new) is new


@pytest.mark.parametrize(
    ("current", "new"),
    [
        (StreamState.STOPPED, StreamState.RUNNING),
        (StreamState.BACKOFF, StreamState.RUNNING),
        (StreamState.RUNNING, StreamState.STOPPED),
    ],
)
def test_shortcuts_are_refused(current: StreamState, new: StreamState) -> None:
    with pytest.raises(InvalidTransition):
        check_transition(current, new)


def test_backoff_doubles_to_the_cap_with_bounded_jitter() -> None:
    assert backoff_delay_s(1, 1, 30, 0.5) == pytest.approx(1.0)
    assert backoff_delay_s(3, 1, 30, 0.5) == pytest.approx(4.0)
    assert backoff_delay_s(10, 1, 30, 0.5) == pytest.approx(30.0)
    assert backoff_delay_s(10, 1, 30, 0.999) <= 30.0
    assert backoff_delay_s(2, 1, 30, 0.0) == pytest.approx(1.6)
