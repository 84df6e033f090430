"""Placement rules of a fleet: fair shares, who gives cameras away, the moves budget."""

from __future__ import annotations

from camgate.cluster.placement import MoveBudget, claim_limit, fair_share, should_give_away


def test_twelve_cameras_on_three_nodes_are_four_each_and_six_once_one_is_gone() -> None:
    assert fair_share(12, 3) == 4
    assert claim_limit(mine=0, wanted=12, live_nodes=3, capacity=16) == 4
    assert claim_limit(mine=4, wanted=12, live_nodes=2, capacity=16) == 2


def test_a_node_never_claims_beyond_max_concurrent_streams() -> None:
    assert claim_limit(mine=3, wanted=100, live_nodes=2, capacity=5) == 2
    assert claim_limit(mine=5, wanted=100, live_nodes=2, capacity=5) == 0


def test_only_a_node_well_above_the_least_loaded_gives_a_camera_away() -> None:
    assert should_give_away("a", {"a": 6, "b": 6, "c": 0}, wanted=12)
    assert should_give_away("a", {"a": 5, "b": 4, "c": 3}, wanted=12)
    assert not should_give_away("a", {"a": 5, "b": 4, "c": 4}, wanted=13)
    assert not should_give_away("a", {"a": 12}, wanted=12)  # alone: nobody to give to


def test_the_move_budget_allows_at_most_the_configured_moves_in_any_interval() -> None:
    budget = MoveBudget(moves=6, interval_s=60)
    times = [t / 10 for t in range(1800)]  # one try every 0.1 s for three minutes
    taken = [t for t in times if budget.take(now_s=t)]
    assert len(taken) == 18
    assert all(sum(1 for u in taken if t <= u < t + 60) <= 6 for t in times)
    assert not MoveBudget(moves=0, interval_s=60).take(0.0)


def test_a_budget_waited_for_long_gives_no_burst() -> None:
    budget = MoveBudget(moves=2, interval_s=10)
    assert [budget.take(s) for s in (0, 1, 2, 500, 501, 502, 510)] == [
        True, True, False, True, True, False, True,
    ]  # fmt: skip
