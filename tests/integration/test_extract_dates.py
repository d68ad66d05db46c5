"""A date allow-listed for marks, end to end: a real store, a real project, real files.

Two extracts of one project carry ±1-day marks in the date of attending the assessment centre
(field 53, allow-listed by the custodian). A copy keeping only that date and unmarked
categories (no IDs, no decoys, nothing withheld: the date's marks are the only evidence) names
its recipient and not the other; the same copy with the date truncated to its month still
links, is read by month and still names it (the marks sit on a month's edges); the date's
mean barely moves. At this scale (about
two participants a day) day-level dates cannot meet k = 5: the refusal says which column stops
it and what to do; at k = 2 the gate, which sees the dates as marked, keeps the marks.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from strongroom.access import pseudonyms
from strongroom.access.models import Project
from strongroom.access.roles import Role
from strongroom.audit import EventType
from strongroom.cohort.model import EID
from strongroom.cohort.synth import synthesise
from strongroom.errors import Refused
from strongroom.extracts import carriers, service
from strongroom.privacy.gate import GatePolicy
from strongroom.privacy.risk import assess
from tests.access_world import World, build_world

DATE = "p53_i0"
# enough unmarked categories that (almost) no two participants share them all: at this scale
# a single exact twin on every column present stops the linkage linking anyone (its
# wrong-link budget), which is the linkage's business, not the date's
CATEGORIES = ["p31", "p52", "p54_i0", "p738_i0", "p1558_i0", "p2178_i0", "p6138_i0_a0",
              "p20116_i0", "p20118", "p21000_i0"]
FIELDS = [31, 48, 52, 53, 54, 738, 1558, 2178, 6138, 20116, 20118, 21000, 21001]
N = 3000
# k = 1: this file is about the marks; the gate's part is the refusal test below
NO_GATE = GatePolicy(k=1)


@dataclass
class Dated:
    world: World
    project: str
    guilty: service.ExtractResult
    innocent: service.ExtractResult
    copy: pl.DataFrame  # the guilty file's participants (decoys dropped), pseudonyms kept
    master: pl.DataFrame


@pytest.fixture(scope="module")
def dated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dated]:
    root = tmp_path_factory.mktemp("dates")
    world = build_world(root)
    world.platform.store.write_version(synthesise(N, 31))
    ctx = world.ctx
    project = world.export_project("Visit dates", "Seasonality of lipids", FIELDS)
    admin = world.sign_in(world.member(Role.CUSTODIAN_ADMIN))
    made = [service.create_extract(ctx, admin, project, "csv", root / f"x{i}.csv",
                                   store=world.platform.store, watch=world.platform.watch,
                                   allow=[53], risk_policy=NO_GATE, withhold=0.0)
            for i in range(2)]
    with ctx.transaction() as db:
        held = db.get(Project, project)
        assert held is not None
        ids = pseudonyms.load(ctx, held)
    copy = pl.read_csv(made[0].path, try_parse_dates=True).filter(
        pl.col(EID).is_in(ids["pid"].implode()))  # custodian-side: the decoys dropped
    master = world.platform.store.load(["participants"]).participants
    yield Dated(world, project, made[0], made[1], copy, master)
    world.platform.close()


def _attribute(dated: Dated, frame: pl.DataFrame, path: Path) -> service.AttributionReport:
    frame.write_csv(path)
    analyst = dated.world.sign_in(dated.world.member(Role.SECURITY_ANALYST))
    return service.attribute(dated.world.ctx, analyst, path, store=dated.world.platform.store)


def test_the_date_carries_marks_and_stays_a_date(dated: Dated) -> None:
    assert DATE in dated.guilty.carriers and DATE in dated.innocent.carriers
    assert dated.copy[DATE].dtype == pl.Date
    assert dated.guilty.risk["kept_for_marks"] == [DATE]


def test_a_copy_keeping_only_the_date_names_its_recipient(dated: Dated, tmp_path: Path) -> None:
    leak = dated.copy.select([DATE, *CATEGORIES]).sample(fraction=1.0, shuffle=True, seed=2)
    report = _attribute(dated, leak, tmp_path / "dates.csv")
    assert report.verdict == "attributed", report.evidence_text()
    assert {a.extract_id for a in report.accused} == {dated.guilty.extract_id}
    assert report.marks is not None and set(report.marks.models) == {DATE}
    model = report.marks.models[DATE]
    assert model.grid == 1.0 and model.calendar == "" and model.sigma == 0.0
    scores = {s.extract_id: s for s in report.scores}
    guilty, innocent = scores[dated.guilty.extract_id], scores[dated.innocent.extract_id]
    assert min(guilty.kind_log_p[:2]) < np.log(1e-9)  # the fingerprint's evidence alone
    assert not innocent.accused


def test_a_date_truncated_to_its_month_still_names_its_recipient(dated: Dated,
                                                                 tmp_path: Path) -> None:
    """The marks sit on a month's edges (``Carrier.edges``, issue 57): truncated to the
    month, each still says which side of the edge it went. (Before, marks on any day: the
    copy read 2 cells in 30 and named no one.)"""
    leak = dated.copy.select([DATE, *CATEGORIES]).with_columns(pl.col(DATE).dt.truncate("1mo"))
    report = _attribute(dated, leak, tmp_path / "months.csv")
    assert {a.extract_id for a in report.accused} == {dated.guilty.extract_id}
    assert report.rows_linked >= 0.99 * leak.height  # linked on the month's scale
    assert report.marks is not None
    model = report.marks.models[DATE]
    assert model.calendar == "month" and model.grid > 30
    # only the marks on a month's edge are read (two thirds of those marked), never the rest
    assert len(report.marks) < 0.8 * model.cells
    scores = {s.extract_id: s for s in report.scores}
    assert scores[dated.innocent.extract_id].log_bound > np.log(1e-3)
    assert scores[dated.guilty.extract_id].flat > 0  # what is read is the truth


def test_the_date_s_mean_moves_by_under_a_thousandth_of_its_sd(dated: Dated) -> None:
    ctx = dated.world.ctx
    with ctx.transaction() as db:
        held = db.get(Project, dated.project)
        assert held is not None
        ids = pseudonyms.load(ctx, held)
    joined = dated.copy.join(ids.rename({"eid": "master", "pid": EID}), on=EID).join(
        dated.master.select(pl.col(EID).cast(pl.Int64).alias("master"), pl.col(DATE)),
        on="master", suffix="_m")
    released = carriers.as_numbers(joined[DATE])
    original = carriers.as_numbers(joined[f"{DATE}_m"])
    moved = released - original
    assert set(moved[~np.isnan(moved)]) == {-1.0, 0.0, 1.0}
    sd = float(np.nanstd(original))
    assert abs(float(np.nanmean(released) - np.nanmean(original))) / sd < 1e-3


def test_day_level_dates_that_stop_k_are_refused_with_what_to_do(dated: Dated,
                                                                 tmp_path: Path) -> None:
    world = dated.world
    admin = world.sign_in(world.member(Role.CUSTODIAN_ADMIN))
    with pytest.raises(Refused) as refused:
        service.create_extract(world.ctx, admin, dated.project, "csv", tmp_path / "k5.csv",
                               store=world.platform.store, watch=world.platform.watch,
                               allow=[53])
    reasons = [r for r in refused.value.reasons if DATE in r and "allow-list" in r]
    assert reasons and "to the day" in reasons[0]
    assert "take field 53 off the allow-list for this extract" in reasons[0]
    assert not (tmp_path / "k5.csv").exists()
    audit = world.ctx.audit
    refusals = [e for e in audit.entries(0, audit.size()) if e.type == EventType.EXTRACT_REFUSED]
    assert refusals and any(DATE in r for r in refusals[-1].details["reasons"])
    # without the allow-list the date is generalised like any quasi-identifier, and no marks
    plain = service.create_extract(world.ctx, admin, dated.project, "csv", tmp_path / "p.csv",
                                   store=world.platform.store, watch=world.platform.watch)
    assert DATE not in plain.carriers and plain.risk["file"]["k"] >= 5


def test_the_gate_measures_the_marked_dates_so_the_file_meets_k(dated: Dated,
                                                                 tmp_path: Path) -> None:
    """k = 2 with up to 30% suppressed: the gate blanks participants alone on their day and
    generalises the rest. It saw the dates as marked, so the file meets k with every other
    participant's mark in place; marked afterwards, a mark moving someone off a shared day
    would leave two alone, and the final check would blank them, marks and all."""
    world = dated.world
    admin = world.sign_in(world.member(Role.CUSTODIAN_ADMIN))
    made = service.create_extract(world.ctx, admin, dated.project, "csv", tmp_path / "k2.csv",
                                  store=world.platform.store, watch=world.platform.watch,
                                  allow=[53], risk_policy=GatePolicy(k=2, suppression_limit=0.3))
    risk = made.risk
    assert risk["action"] == "anonymised" and risk["kept_for_marks"] == [DATE]
    assert risk["file"]["k"] >= 2
    assert risk["file"]["blanked_after_decoys"] <= made.decoys  # decoys only, never a mark
    copy = pl.read_csv(made.path, try_parse_dates=True)
    assert assess(copy, risk["quasi_identifiers"], threshold_k=2).k >= 2
    with world.ctx.transaction() as db:
        held = db.get(Project, dated.project)
        assert held is not None
        ids = pseudonyms.load(world.ctx, held)
    real = copy.join(ids.rename({"eid": "master", "pid": EID}), on=EID).join(
        dated.master.select(pl.col(EID).cast(pl.Int64).alias("master"), pl.col(DATE)),
        on="master", suffix="_m")
    moved = carriers.as_numbers(real[DATE]) - carriers.as_numbers(real[f"{DATE}_m"])
    kept = ~np.isnan(moved)
    assert set(moved[kept]) == {-1.0, 0.0, 1.0}
    assert kept.sum() >= (1 - 0.3) * real.height  # suppressed by the gate, within its limit
    assert np.mean(moved[kept] != 0) > 0.05  # the marks went out with the kept dates
