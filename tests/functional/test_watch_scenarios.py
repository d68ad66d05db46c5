"""Every attack of the watch simulation, at small scale, through the real API.

The benchmark (``benchmarks/watch_simulation.py``) runs the same scenarios with 50 partners
over 180 days; here its smoke run (``SMOKE``): 17 partners over 17 days, a cohort of 3,000 and
limits scaled to it, the attacks from day 3 (the new network and the off-hours spike once
their detectors can have learnt the person: days 9 and 16), so each scenario has a test that
fails if its detection or its limit stops working.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from benchmarks.watch_simulation import EXPORTING, SCENARIOS, SMOKE, Simulation, scratch

pytestmark = pytest.mark.slow  # two and a half weeks of simulated traffic

LIMIT = SMOKE["limit"]
BULK = {"single bulk export", "parallel bulk (3 partners)"}
# by policy these only alert: travel and late work are not misconduct on their own, and a
# revoked institution is already cut off
ALERT_ONLY = {"new network", "off-hours spike", "revoked institution's token"}


@pytest.fixture(scope="module")
def run() -> Iterator[dict[str, Any]]:
    with scratch() as tmp:
        sim = Simulation(Path(tmp), **SMOKE)
        try:
            yield sim.run()
        finally:
            sim.platform.close()


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_each_attack_is_detected(run: dict[str, Any], name: str) -> None:
    row = next(r for r in run["scenarios"] if r["scenario"] == name)
    assert row["detected"], row
    if name in BULK:  # refused before running: suspended in the same request, nothing out
        assert row["exposed"] == 0 and row["suspend_s"] is not None, row
    if name in EXPORTING:  # the hard limit bounds what any exporting attack takes
        partners = 3 if "parallel" in name else 1
        assert row["exposed"] <= LIMIT * partners, row
    # every other attack is suspended, by its own detection and not by something later
    assert (row["suspend_s"] is None) is (name in ALERT_ONLY), row
    assert row["detectors"], row


def test_no_false_suspension_and_declared_jobs_honoured(run: dict[str, Any]) -> None:
    assert run["false_suspension_partner_days"] == 0, run["false_suspensions"]
    assert run["declared_job_extracts"] and set(run["declared_job_extracts"]) == {200}


def test_bulk_refusals_are_answered(run: dict[str, Any]) -> None:
    assert run["bulk_refusal_ms"]["n"] >= 2 + 3  # trials, the single and the parallel three
