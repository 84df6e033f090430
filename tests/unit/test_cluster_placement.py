"""Placement rules of a fleet: fair shares, who gives cameras away, the moves-per-minute budget."""

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


def test_the_move_budget_allows_at_most_the_configured_moves_per_minute() -> None:
    budget = MoveBudget(per_minute=6)
    taken = [budget.take(now_s=t / 10) for t in range(600)]  # one try every 0.1 s for 60 s
    assert 6 <= sum(taken) <= 7
    assert not MoveBudget(per_minute=0).take(0.0)
