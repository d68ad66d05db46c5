"""What a project's earlier GWAS spent of the membership budget is charged to a new group:
in full for a group sharing half its members or more, in proportion below that."""

from __future__ import annotations

import pytest
from pyroaring import BitMap

from strongroom.genomics.membership import Spent
from strongroom.outputs.genetics import budget_bytes, budget_from, increment, spent_on

ONE = Spent(1.0, 1.0, 1.0, 0.0, 0.0, 100)


def test_nothing_spent_on_a_new_group() -> None:
    assert spent_on([], BitMap(range(100))) is None
    assert spent_on([(BitMap(range(200, 300)), ONE)], BitMap(range(100))) is None


def test_a_group_a_few_people_from_another_is_charged_in_full() -> None:
    charged = spent_on([(BitMap(range(100)), ONE)], BitMap(range(1, 101)))
    assert charged == ONE


def test_a_patchwork_of_small_overlaps_adds_up() -> None:
    """Sixteen groups each holding a quarter of the new one's members (the second review's
    way to a fresh budget for every release) are charged a quarter each: four in all."""
    group = BitMap(range(400))
    earlier = [(BitMap(range(100 * (i % 4), 100 * (i % 4) + 100)) | BitMap(range(1000, 1300)),
                ONE) for i in range(16)]
    charged = spent_on(earlier, group)
    assert charged is not None and charged.separation == pytest.approx(4.0)


def test_the_budget_round_trips_and_records_increments() -> None:
    after = Spent(3.0, 3.0, 3.0, 0.0, 0.0, 300)
    assert increment(after, ONE) == Spent(2.0, 2.0, 2.0, 0.0, 0.0, 200)
    budget = [(BitMap([1, 5, 9]), ONE)]
    assert budget_from(budget_bytes(budget)) == budget
