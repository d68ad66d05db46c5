"""The risk gate inside ``create_extract``: a real store, a real project, real files.

An extract whose quasi-identifiers (sex, year and month of birth, centre, ethnicity) leave
participants unique is anonymised on the way out — those columns only — and the file as
written, decoys included, meets k; the audit event records what was done; a page smaller than
k is refused; the copy is still attributed to its recipient.
"""

from __future__ import annotations

import json
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
from strongroom.extracts import service
from strongroom.privacy.gate import GatePolicy
from strongroom.privacy.risk import assess
from tests.access_world import World, build_world

QIS = ["p31", "p34", "p52", "p54_i0", "p21000_i0"]
FIELDS = [31, 34, 50, 52, 54, 21000, 21001, 21002, 30690, 30740, 30760, 30780, 30870]
N = 3000


@dataclass
class Made:
    world: World
    project: str
    result: service.ExtractResult
    copy: pl.DataFrame
    master: pl.DataFrame


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Made]:
    root = tmp_path_factory.mktemp("gate")
    world = build_world(root)
    world.platform.store.write_version(synthesise(N, 29))
    ctx = world.ctx
    project = world.export_project("Gate study", "Blood lipids by region", FIELDS)
    admin = world.sign_in(world.member(Role.CUSTODIAN_ADMIN))
    result = service.create_extract(ctx, admin, project, "csv", root / "x.csv",
                                    store=world.platform.store,
                                    watch=world.platform.watch)
    copy = pl.read_csv(result.path, infer_schema_length=None)
    master = world.platform.store.load(["participants"]).participants
    yield Made(world, project, result, copy, master)
    world.platform.close()


def test_quasi_identifiers_are_anonymised_and_the_file_meets_k(made: Made) -> None:
    risk = made.result.risk
    assert risk["action"] == "anonymised" and risk["quasi_identifiers"] == QIS
    assert risk["before"]["k"] < 5 and risk["after"]["k"] >= 5
    assert risk["file"]["k"] >= 5 and risk["file"]["rows"] == made.copy.height
    assert risk["suppressed"] <= 0.02 * N
    assert assess(made.copy, QIS).k >= 5  # the file as written, decoys included
    generalised = {c for c, level in risk["generalisation"].items()
                   if level not in ("value", "year", "month", "centre", "code")}
    assert generalised, risk["generalisation"]
    for column in generalised:
        assert made.copy[column].dtype == pl.String


def test_measurement_columns_leave_exactly_as_fingerprinted(made: Made) -> None:
    ctx = made.world.ctx
    with ctx.transaction() as db:
        project = db.get(Project, made.project)
        assert project is not None
        ids = pseudonyms.load(ctx, project)
    real = made.copy.join(ids.rename({"eid": "master", "pid": EID}), on=EID, how="inner")
    assert real.height == made.result.participants >= 0.95 * N  # 2% withheld, keyed
    joined = real.join(made.master.with_columns(pl.col(EID).cast(pl.Int64)),
                       left_on="master", right_on=EID, suffix="_m")
    measurements = [c for c in made.result.columns if c not in QIS]
    for column in measurements:
        moved = np.abs(joined[column].cast(pl.Float64).to_numpy()
                       - joined[f"{column}_m"].cast(pl.Float64).to_numpy())
        moved = moved[~np.isnan(moved)]
        if column in made.result.carriers:
            step = 10.0 ** -ctx.dictionary.field(int(column[1:].split("_")[0])).precision
            assert np.all(np.isclose(moved, step) | (moved == 0))
        else:
            assert np.all(moved == 0), column


def test_the_audit_event_records_what_the_gate_did_without_values(made: Made) -> None:
    events = [e for e in made.world.platform.audit.entries() if e.type == "extract.created"]
    details = next(e.details for e in events if e.details["extract"] == made.result.extract_id)
    assert details["risk"] == json.loads(json.dumps(made.result.risk))
    text = json.dumps(details["risk"])
    assert "Leeds" not in text and "11010" not in text and "British" not in text


def test_a_page_smaller_than_k_is_refused(made: Made, tmp_path: Path) -> None:
    admin = made.world.sign_in(made.world.member(Role.CUSTODIAN_ADMIN))
    with pytest.raises(Refused) as refused:
        service.create_extract(made.world.ctx, admin, made.project, "csv", tmp_path / "p.csv",
                               store=made.world.platform.store,
                               watch=made.world.platform.watch, rows=slice(0, 3))
    assert any("fewer than k=5" in r for r in refused.value.reasons)
    assert not (tmp_path / "p.csv").exists()
    audit = made.world.ctx.audit
    last = [e for e in audit.entries(0, audit.size()) if e.type == EventType.EXTRACT_REFUSED]
    assert last and last[-1].subject == made.project
    strict = service.create_extract(made.world.ctx, admin, made.project, "csv",
                                    tmp_path / "s.csv", store=made.world.platform.store,
                               watch=made.world.platform.watch,
                                    risk_policy=GatePolicy(k=20, suppression_limit=0.01))
    assert strict.risk["file"]["k"] >= 20 and strict.risk["policy"]["k"] == 20


def test_the_generalised_copy_is_still_attributed(made: Made, tmp_path: Path) -> None:
    analyst = made.world.sign_in(made.world.member(Role.SECURITY_ANALYST))
    leak = tmp_path / "leak.csv"
    made.copy.sample(fraction=0.5, seed=3).write_csv(leak)
    report = service.attribute(made.world.ctx, analyst, leak, store=made.world.platform.store)
    assert report.verdict == "attributed"
    assert {a.extract_id for a in report.accused} == {made.result.extract_id}
    # the decoys, generalised like everyone, still match on every column present; whether
    # they are listed as evidence depends on how common rows like these random decoys are in
    # the cohort (decoy_evidence.py; 1 full run in about 30 had none listed), and a note then
    # says they matched
    listed = {d.extract_id for d in report.decoys_found}
    noted = [n for n in report.notes if "matched decoys of 1 extract(s)" in n]
    assert listed == {made.result.extract_id} or (not listed and noted), report.notes


def test_without_ids_the_copy_is_linked_by_its_measurements(made: Made, tmp_path: Path) -> None:
    analyst = made.world.sign_in(made.world.member(Role.SECURITY_ANALYST))
    leak = tmp_path / "no-ids.csv"
    made.copy.drop(EID).sample(fraction=1.0, shuffle=True, seed=4).write_csv(leak)
    report = service.attribute(made.world.ctx, analyst, leak, store=made.world.platform.store)
    assert report.verdict == "attributed"
    assert {a.extract_id for a in report.accused} == {made.result.extract_id}


def test_the_candidate_risk_report_is_for_overseers_only(made: Made) -> None:
    world = made.world
    committee = world.sign_in(world.member(Role.ACCESS_COMMITTEE))
    report = service.candidate_risk(world.ctx, committee, made.project,
                                    store=world.platform.store, k=5)
    expected = assess(made.master.select(QIS), QIS, threshold_k=5)
    assert report["k_anonymity"] == expected.k
    assert report["sample_uniques"] == expected.sample_uniques
    assert sorted(report["quasi_identifiers"]) == sorted(QIS)
    with pytest.raises(Refused):
        service.candidate_risk(world.ctx, world.sign_in(world.member(Role.RESEARCHER)),
                               made.project, store=world.platform.store)
