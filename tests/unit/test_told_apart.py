"""A bit attack stopped at its first observation read wrong (``runner.attempt(...,
stop_early=True)``, as tests/integration/test_disclosure_attacks.py runs the catalogue) gets
the verdict of the full run on every pair (the benchmark's), from a prefix of its observations.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from strongroom.attacks import runner
from strongroom.attacks.catalogue import Attack, Obs, Target

PAIRS = 4  # few pairs, so that random fingerprints often read right to the end


def _target(i: int, obese: bool) -> Target:
    return Target(f"sbp = {120 + i}", 1, 1950, 120 + i, 35.0 if obese else 22.0, 0.0)


CAST = runner.Cast(_target(0, True), [_target(i, True) for i in range(PAIRS)],
                   [_target(i, False) for i in range(PAIRS)], ["centre = 1", "centre = 2"])
BIT = Attack("one-bit", "what was seen, as it was seen", (),
             lambda obs, _target: obs[0].body["seen"] if obs[0].body else None, bit=True)
SEEN = st.sampled_from([0, 1, 2, None, float("nan"), (1, "a"), (1, "b")])


def _run(monkeypatch: pytest.MonkeyPatch, fingerprints: list[Any],
         stop_early: bool) -> tuple[bool, int]:
    """The verdict, and how many observations it took."""
    left = iter(fingerprints)
    taken = []

    def observe(*_args: Any, **_kwargs: Any) -> list[Obs]:
        taken.append(1)
        return [Obs("analyse", body={"seen": next(left)})]

    monkeypatch.setattr(runner, "observe", observe)
    outcome = runner.attempt(None, BIT, CAST, stop_early=stop_early)  # type: ignore[arg-type]
    return outcome.recovered, len(taken)


@given(st.one_of(st.lists(SEEN, min_size=2 * PAIRS, max_size=2 * PAIRS),
                 # a leak (every pair read right), perhaps with one observation changed
                 st.tuples(SEEN, SEEN, st.integers(0, 2 * PAIRS), SEEN).map(
                     lambda t: [t[0], t[1]] * PAIRS if t[2] == 2 * PAIRS else
                     [*([t[0], t[1]] * PAIRS)[:t[2]], t[3], *([t[0], t[1]] * PAIRS)[t[2] + 1:]])))
def test_stopping_early_keeps_the_verdict_of_every_pair(fingerprints: list[Any]) -> None:
    with pytest.MonkeyPatch.context() as patch:
        full, everything = _run(patch, fingerprints, stop_early=False)
        early, taken = _run(patch, fingerprints, stop_early=True)
    assert everything == 2 * PAIRS
    assert early == full and taken <= everything
    if full:  # a leak is seen on every pair
        assert taken == everything


def test_a_defence_that_answers_alike_ends_after_one_pair(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert _run(monkeypatch, [1] * 2 * PAIRS, stop_early=True) == (False, 2)
    assert _run(monkeypatch, [0, 1, 0, 0] + [0, 1] * (PAIRS - 2), stop_early=True) == (False, 4)
    assert _run(monkeypatch, [0, 1] * PAIRS, stop_early=True) == (True, 2 * PAIRS)
