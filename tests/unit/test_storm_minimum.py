"""The storm benchmark's minimum calls per node (its lower bound's input) against a table
written by hand (``storm_minimums``), not against the planner that computes them."""

from __future__ import annotations

import pytest

from tests.unit.storm_minimums import MIN_CALLS
from vpcnet_sim.bench.storm import join_minimum


@pytest.mark.parametrize(("instance_type", "mode"), sorted(MIN_CALLS))
def test_storm_minimum_is_the_table(instance_type: str, mode: str) -> None:
    assert join_minimum(instance_type, mode) == MIN_CALLS[(instance_type, mode)]


def test_unknown_type_is_refused() -> None:
    with pytest.raises(ValueError, match="m9.nonesuch"):
        join_minimum("m9.nonesuch", "full")
