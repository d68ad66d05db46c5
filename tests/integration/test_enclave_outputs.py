"""From SQL to a released file, through the real services: each disclosure trap, end to end.

One platform (SQLite, real keys, a 3,000-participant synthetic cohort) serves the module; each
test defines what it needs under its own names, so the tests do not depend on their order except
where the ledger is the point (differencing), and those tests say so.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from strongroom.access import people
from strongroom.access.context import Principal
from strongroom.access.models import Project
from strongroom.access.roles import Role
from strongroom.access.states import Vetting
from strongroom.audit import EventType
from strongroom.enclave import margin, service
from strongroom.errors import Conflict, Invalid, Refused
from strongroom.outputs import requests
from strongroom.outputs.check import check
from strongroom.outputs.render import Format
from strongroom.outputs.states import OutputStatus
from strongroom.outputs.tidy import TableFormat
from strongroom.outputs.verdicts import Verdict
from tests.access_world import PASSWORD, Member, World, build_world

FIELDS = [31, 34, 54, 20116, 21001, 4080, 41270, 41280]
BASE = ("SELECT pid, p31 AS sex, p34 AS birth_year, p54_i0 AS centre, p20116_i0 AS smoking, "
        "p21001_i0 AS bmi, p4080_i0_a0 AS sbp, "
        "CASE WHEN p34 < 1950 THEN 'before 1950' ELSE '1950 on' END AS era FROM participants")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    found = build_world(tmp_path_factory.mktemp("enclave"), cohort=3000, fields=FIELDS)
    yield found
    found.platform.close()


@pytest.fixture(scope="module")
def researcher(world: World) -> Principal:
    assert world.researcher is not None
    who = world.sign_in(world.researcher)
    service.define(world.platform.enclave, who, world.project_id, "base", BASE)
    return who


def analyse(world: World, who: Principal, analysis: dict[str, object],
            fmt: str = "json") -> requests.OutputView:
    return world.platform.outputs.analyse(who, world.project_id, analysis, Format(fmt))


def rules_hit(view: requests.OutputView) -> set[str]:
    return {f.rule for f in view.report.findings}


def test_a_safe_crosstab_is_released_and_the_bytes_downloaded_are_those_checked(
        world: World, researcher: Principal) -> None:
    view = analyse(world, researcher, {"kind": "crosstab", "definition": "base",
                                       "rows": "sex", "columns": "era"})
    assert view.report.verdict in (Verdict.RELEASE, Verdict.SUPPRESS), view.reasons
    released = world.platform.outputs.request_release(researcher, view.output.id)
    assert released.status is OutputStatus.RELEASED
    got = requests.download(world.ctx, researcher, view.output.id)
    assert hashlib.sha256(got.payload).hexdigest() == view.output.sha256
    body = json.loads(got.payload)
    assert body["kind"] == "crosstab" and "contributors" not in got.payload.decode()
    types = [e.type for e in world.platform.audit.entries()]
    assert EventType.OUTPUT_RELEASED in types


def test_rows_duplicated_to_inflate_a_count_do_not_pass(world: World,
                                                        researcher: Principal) -> None:
    # one row per diagnosis: a few people with many diagnoses make a large row count
    service.define(world.platform.enclave, researcher, world.project_id, "dups",
                   "SELECT b.pid, b.centre FROM base b JOIN diagnoses d ON b.pid = d.pid "
                   "WHERE b.birth_year < 1939")
    view = analyse(world, researcher, {"kind": "frequency", "definition": "dups",
                                       "variable": "centre"})
    small = [c for c in view.report.findings if c.rule == "threshold"]
    assert small, "cells of few participants but many rows must fail the threshold"


def test_differencing_by_excluding_one_person_hides_the_later_count(
        world: World, researcher: Principal) -> None:
    everyone = analyse(world, researcher, {
        "kind": "aggregate_sql", "sql": "SELECT count(*) AS n FROM base"})
    assert world.platform.outputs.request_release(
        researcher, everyone.output.id).status is OutputStatus.RELEASED
    # picking the person by pid through a subquery over everyone is refused outright ...
    with pytest.raises(Invalid, match="other participants' values"):
        service.define(world.platform.enclave, researcher, world.project_id, "all_but_one",
                       "SELECT * FROM base WHERE pid <> (SELECT min(pid) FROM base)")
    # ... and picking them by their own values is row-local, so the ledger must catch it
    service.define(world.platform.enclave, researcher, world.project_id, "all_but_one",
                   f"SELECT * FROM base WHERE NOT coalesce({_one_person(world)}, false)")
    all_but_one = analyse(world, researcher, {
        "kind": "aggregate_sql", "sql": "SELECT count(*) AS n FROM all_but_one"})
    # the clash costs the cell, not the output: the count is hidden, with the ledger's reason
    assert all_but_one.report.verdict is Verdict.SUPPRESS
    # (by the pair's rule, or by the combination audit when earlier counts are in it too)
    hidden = [f for f in all_but_one.report.findings if f.rule.startswith("differencing")]
    assert hidden and {f.cell for f in hidden} == all_but_one.report.suppressed == {0}
    # with its one figure hidden it holds nothing, and says so before it is asked for
    assert "nothing_left" in {f.rule for f in all_but_one.report.findings}
    assert world.platform.outputs.request_release(
        researcher, all_but_one.output.id).status is OutputStatus.RELEASED
    body = json.loads(requests.download(world.ctx, researcher, all_but_one.output.id).payload)
    assert [c["value"] for c in body["cells"]] == [None]


def _one_person(world: World) -> str:
    """A condition true for one participant alone (their quasi-identifiers), custodian-side."""
    with world.ctx.transaction() as db:
        from strongroom.access.models import Project
        project = db.get(Project, world.project_id)
        assert project is not None
    _, base = world.platform.enclave.definition(project, "base")
    row = (base.drop_nulls(["sex", "birth_year", "sbp"])
           .filter(pl.len().over("sex", "birth_year", "sbp") == 1)
           .sort("sbp", "birth_year", "sex").row(0, named=True))
    return f"(sex = {row['sex']} AND birth_year = {row['birth_year']} AND sbp = {row['sbp']})"


def test_two_counts_of_one_group_that_differ_by_a_few_hide_the_later_one(
        world: World, researcher: Principal) -> None:
    view = analyse(world, researcher, {
        "kind": "aggregate_sql",
        "sql": "SELECT sex, count(*) AS n, count(bmi) AS with_bmi FROM base GROUP BY sex"})
    # the synthetic cohort (seed 7) has a few participants without a BMI in each group: the
    # later count of each close pair is hidden (a cell, not the output), and nothing that
    # is shown is close to anything else shown; a count identical to one this world
    # released earlier (everyone by sex) is hidden as a repeat, against the ledger
    close = [f for f in view.report.findings if f.rule.startswith("differencing")]
    # each hidden cell names one reason (a close count in the output, or a release)
    assert close and all('column "with_bmi"' in f.reason.split(" is hidden")[0]
                         or "in release" in f.reason for f in close)
    assert sum('column "with_bmi"' in f.reason.split(" is hidden")[0] for f in close) == 2
    assert {f.cell for f in close} <= view.report.suppressed
    assert view.report.verdict is Verdict.SUPPRESS


def test_raw_rows_as_group_labels_are_blocked(world: World, researcher: Principal) -> None:
    sql = "SELECT bmi, sbp, birth_year, count(*) AS n FROM base GROUP BY bmi, sbp, birth_year"
    view = analyse(world, researcher, {"kind": "aggregate_sql", "sql": sql}, fmt="csv")
    # a key's values held by fewer than 10 participants are counted under its most common
    # value, and the rows whose labels are still held by fewer than 10 are left out, labels
    # and all: every label that leaves is a value that 10 or more participants hold
    assert "labels" in rules_hit(view) and view.report.removed
    with world.platform.access.transaction() as db:
        project = db.get(Project, world.project_id)
        assert project is not None
    _, base = world.platform.enclave.definition(project, "base")
    threshold = world.platform.outputs.rules_for(world.project_id).threshold
    request = {"kind": "aggregate_sql", "sql": sql}
    # the same request key as the output service's, so the same keyed margins
    with margin.keyed(service.decision_key(world.platform.enclave, project, request)):
        _, result = service.analyse(world.platform.enclave, researcher, world.project_id,
                                    request, threshold=threshold)
        removed = check(result, world.platform.outputs.rules_for(world.project_id)).removed
    shown = {c.row for i, c in enumerate(result.cells) if i not in removed}
    for position, key in enumerate(("bmi", "sbp", "birth_year")):
        held = base.group_by(pl.col(key).cast(pl.String).fill_null("NULL")).len()
        for row in shown:
            assert int(held.filter(pl.col(key) == row[position])["len"].sum()) >= threshold, \
                (key, row, held.sort("len").tail(3))
    # the reasons of an output hand over no label it does not show (a removed row's are
    # participants' own values); a shown row's cell suppressed by its keyed margin
    # (enclave/margin.py) may be named, its labels being released anyway
    reasons = " ".join(f.reason for f in view.report.findings)
    released = {part for row in shown for part in row}
    assert set(re.findall(r"\b19[2-7][0-9]\b", reasons)) <= released, \
        "a birth year from a removed row appears in the reasons"


def test_an_unknown_aggregation_is_refused_with_its_reason(world: World,
                                                          researcher: Principal) -> None:
    with pytest.raises(Invalid) as refused:
        analyse(world, researcher, {
            "kind": "aggregate_sql", "sql": "SELECT sex, bit_xor(sbp) FROM base GROUP BY sex"})
    assert "aggregat" in str(refused.value)


@pytest.mark.parametrize("sql", [
    "COPY participants TO '/tmp/out.csv'",
    "SELECT * FROM read_csv('/etc/passwd')",
    "ATTACH '/tmp/x.db' AS x",
    "SELECT getenv('HOME') AS pid",
])
def test_hostile_sql_is_refused_and_audited(world: World, researcher: Principal,
                                            sql: str) -> None:
    before = world.platform.audit.size()
    with pytest.raises(Invalid):
        service.define(world.platform.enclave, researcher, world.project_id, "hostile", sql)
    new = world.platform.audit.entries(before)
    assert EventType.ENCLAVE_ANALYSIS_REFUSED in [e.type for e in new]


def test_review_needs_two_different_checkers_and_then_releases(tmp_path: Path) -> None:
    # a crosstab with structurally empty combinations, in a project whose rules send small
    # cells (zeros included) to two checkers rather than hiding them; in a world of its own
    # (the module's releases would leave it only its zeros, which no checker is sent)
    world = build_world(tmp_path / "world", cohort=3000, fields=FIELDS)
    assert world.researcher is not None
    researcher = world.sign_in(world.researcher)
    service.define(world.platform.enclave, researcher, world.project_id, "base", BASE)
    service.define(world.platform.enclave, researcher, world.project_id, "grouped",
                   "SELECT pid, sex, CASE WHEN sex = 0 THEN 'a' WHEN era = '1950 on' THEN 'b' "
                   "ELSE 'c' END AS grp FROM base")
    admin = world.sign_in(world.staff[Role.CUSTODIAN_ADMIN])
    world.platform.outputs.set_project_rules(admin, world.project_id,
                                             {"threshold": {"verdict": "review"}})
    try:
        view = analyse(world, researcher, {"kind": "crosstab", "definition": "grouped",
                                           "rows": "sex", "columns": "grp"})
    finally:  # the module's other tests work under the shipped rules
        world.platform.outputs.set_project_rules(admin, world.project_id, {})
    assert view.report.verdict is Verdict.REVIEW, view.reasons
    held = world.platform.outputs.request_release(
        researcher, view.output.id, "the zero count is structural: no one has a BMI over 1000")
    assert held.status is OutputStatus.UNDER_REVIEW
    checker = world.sign_in(world.staff[Role.OUTPUT_CHECKER])
    second = people.create(world.ctx, None, institution_id=world.staff[Role.OUTPUT_CHECKER]
                           .institution_id, email="second-checker@custodian.test",
                           name="Second", roles=[Role.OUTPUT_CHECKER.value], password=PASSWORD,
                           vetting=Vetting.APPROVED)
    today = world.clock().date()
    people.record_training(world.ctx, None, second.person.id, course="Output checking",
                           completed_on=today - dt.timedelta(days=1),
                           expires_on=today + dt.timedelta(days=300))
    other = world.sign_in(Member(second.person.id, second.person.email, second.totp_secret,
                                 world.staff[Role.OUTPUT_CHECKER].institution_id))
    once = world.platform.outputs.review(checker, view.output.id, True, "structural zero")
    assert once.status is OutputStatus.APPROVED_ONCE
    with pytest.raises(Conflict):
        world.platform.outputs.review(checker, view.output.id, True, "again")
    done = world.platform.outputs.review(other, view.output.id, True, "agreed")
    assert done.status is OutputStatus.RELEASED
    world.platform.close()


def _released_crosstab(world: World, who: Principal, definition: str) -> str:
    view = analyse(world, who, {"kind": "crosstab", "definition": definition, "rows": "sex",
                                "columns": "era"})
    released = world.platform.outputs.request_release(who, view.output.id)
    assert released.status is OutputStatus.RELEASED, view.reasons
    return view.output.id


def test_a_released_output_downloads_as_a_labelled_table_counted_as_a_download(
        world: World, researcher: Principal) -> None:
    output_id = _released_crosstab(world, researcher, "base")
    before = world.platform.audit.size()
    got = world.platform.outputs.table(researcher, output_id, TableFormat.PARQUET)
    frame = pl.read_parquet(io.BytesIO(got.payload))
    assert got.media_type == "application/vnd.apache.parquet"
    assert got.filename == "crosstab-base-sex-era.parquet"  # named from its request
    assert set(frame["sex"]) == {"Female", "Male", "Total"}  # the codes' meanings, coding 9
    assert set(frame["sex_code"]) == {"0", "1", "Total"}
    assert "era_code" not in frame.columns  # computed in SQL: no coding to give it
    record = json.loads(requests.download(world.ctx, researcher, output_id).payload)
    shown = {(c["row"][0], c["column"]): c["value"] for c in record["cells"]}
    for row in frame.iter_rows(named=True):  # the same figures, nothing more
        assert shown[(row["sex_code"], row["era"])] == row["count"]
    types = [e.type for e in world.platform.audit.entries(before)]
    assert types.count(EventType.OUTPUT_DOWNLOADED) >= 2  # the table, then the record


def test_a_table_is_refused_until_the_output_is_released(world: World,
                                                         researcher: Principal) -> None:
    view = analyse(world, researcher, {"kind": "frequency", "definition": "base",
                                       "variable": "sex"})
    with pytest.raises(Refused, match="not released"):
        world.platform.outputs.table(researcher, view.output.id, TableFormat.CSV)


def test_a_definition_made_again_after_the_output_gives_its_table_no_labels(
        world: World, researcher: Principal) -> None:
    enclave = world.platform.enclave
    service.define(enclave, researcher, world.project_id, "relabel",
                   "SELECT pid, sex, era FROM base")
    output_id = _released_crosstab(world, researcher, "relabel")
    world.clock.advance(minutes=1)
    service.drop_definition(enclave, researcher, world.project_id, "relabel")
    service.define(enclave, researcher, world.project_id, "relabel",
                   "SELECT pid, smoking AS sex, era FROM base")  # smoking: 0 never, 1 previous
    got = world.platform.outputs.table(researcher, output_id, TableFormat.CSV)
    frame = pl.read_csv(io.BytesIO(got.payload), schema_overrides={"sex": pl.String})
    assert "sex_code" not in frame.columns and set(frame["sex"]) == {"0", "1", "Total"}


# -- what the reasons of a held or blocked output may name -----------------------------------
# The guarantee: a reason names a label only where the output would show it if released (a
# group, level or interval held by the threshold); everything else it quotes is "…".

QUOTED = re.compile(r"\"([^\"]*)\"|'([^']*)'")


CODE_BESIDE = re.compile(r".+ \((-?\d+)\)")  # "Prefer not to answer (-3)"


def quoted(view: requests.OutputView) -> set[str]:
    return {a or b for f in view.report.findings for a, b in QUOTED.findall(f.reason)}


def _base(world: World) -> pl.DataFrame:
    with world.platform.access.transaction() as db:
        project = db.get(Project, world.project_id)
        assert project is not None
    return world.platform.enclave.definition(project, "base")[1]


def test_a_blocked_survival_table_names_the_group_and_interval_that_failed(
        world: World, researcher: Principal) -> None:
    # follow-up "time" is BMI, so the last intervals hold few people
    service.define(world.platform.enclave, researcher, world.project_id, "followed",
                   "SELECT pid, smoking, bmi AS t, CASE WHEN sex = 1 THEN 1 ELSE 0 END AS e "
                   "FROM base WHERE bmi IS NOT NULL")
    view = analyse(world, researcher, {"kind": "kaplan_meier", "definition": "followed",
                                       "time": "t", "event": "e", "group": "smoking",
                                       "interval": 5})
    assert view.report.verdict is Verdict.BLOCK, view.reasons
    named = quoted(view) - {""}
    assert named, view.reasons  # the researcher is told which group and interval
    frame = _base(world).filter(pl.col("bmi").is_not_null())
    groups = frame.group_by(pl.col("smoking").cast(pl.String).fill_null("(missing)")).len()
    common = set(groups.filter(pl.col("len") >= 10)["smoking"])  # every line is at k or more
    for label in named:
        parts = set(label.split(" / "))
        group = parts - {p for p in parts if p.endswith(" days") or p in (
            "at_risk", "events", "censored", "survival")}
        # smoking's codes are read by their meanings, the code beside each (issue 55)
        codes = {m.group(1) if (m := CODE_BESIDE.fullmatch(g)) else g for g in group}
        assert {g for g in group if not CODE_BESIDE.fullmatch(g)} <= {"(missing)"}, group
        assert codes <= common, (label, groups)
        for interval in (p for p in parts if p.endswith(" days")):
            start = float(interval.strip("[(").split(",")[0])
            assert frame.filter(pl.col("bmi") > start).height >= 10, interval


@pytest.mark.parametrize("kind", ["kaplan_meier", "logistic"])
def test_participants_values_as_groups_or_levels_are_never_named(
        world: World, researcher: Principal, kind: str) -> None:
    # the attacker's labels: the obese participants' own blood pressures
    service.define(world.platform.enclave, researcher, world.project_id, f"leaky_{kind}",
                   "SELECT pid, CASE WHEN bmi > 40 THEN 'sbp ' || CAST(sbp AS VARCHAR) "
                   "ELSE 'other' END AS g, coalesce(birth_year, 1950) - 1900 AS t, "
                   "CASE WHEN sex = 1 THEN 1 ELSE 0 END AS e, "
                   "coalesce(birth_year, 1950) AS y FROM base")
    spec: dict[str, object] = (
        {"kind": "kaplan_meier", "time": "t", "event": "e", "group": "g", "interval": 3}
        if kind == "kaplan_meier" else
        {"kind": "logistic", "outcome": "e", "covariates": ["g", "y"], "categorical": ["g"]})
    view = analyse(world, researcher, {**spec, "definition": f"leaky_{kind}"})
    secret = {f"sbp {v}" for v in _base(world).filter(pl.col("bmi") > 40)["sbp"].drop_nulls()
              .cast(pl.Int64).cast(pl.String)}
    assert secret, "the world has obese participants"
    reasons = " ".join(f.reason for f in view.report.findings)
    assert not any(s in reasons for s in secret), reasons


# -- models from formulas (enclave/analyses/glm.py) ------------------------------------------

def test_a_formula_model_is_released_with_its_odds_ratios_as_fitted_inside(
        world: World, researcher: Principal) -> None:
    import formulaic
    import statsmodels.api as sm

    # everyone, and columns none is missing: a fit over a few fewer participants than an
    # earlier release would difference against it (and is blocked: see the ledger's tests)
    service.define(world.platform.enclave, researcher, world.project_id, "obesity",
                   "SELECT pid, sex, birth_year, CASE WHEN bmi > 30 THEN 1 ELSE 0 END AS obese "
                   "FROM base")
    formula = "obese ~ cr(birth_year, df=3) * C(sex)"
    view = analyse(world, researcher, {"kind": "glm", "definition": "obesity",
                                       "formula": formula, "family": "binomial"})
    assert view.report.verdict in (Verdict.RELEASE, Verdict.SUPPRESS), view.reasons
    released = world.platform.outputs.request_release(researcher, view.output.id)
    assert released.status is OutputStatus.RELEASED
    got = world.platform.outputs.table(researcher, view.output.id, TableFormat.CSV)
    frame = pl.read_csv(io.BytesIO(got.payload))
    male = frame.filter(pl.col("term_code") == "sex=1").row(0, named=True)
    assert male["term"] == "sex=Male" and male["level"] == "Male" and male["odds_ratio"] > 0
    # custodian-side, the same fit on the same rows: the released estimate is within its SE
    with world.platform.access.transaction() as db:
        project = db.get(Project, world.project_id)
        assert project is not None
    rows = world.platform.enclave.definition(project, "obesity")[1].drop_nulls().to_pandas()
    rows["sex"] = rows["sex"].astype(str)
    x = formulaic.model_matrix("cr(birth_year, df=3, constraints='center') * "
                               "C(sex, contr.treatment('0'))", rows)
    truth = sm.GLM(rows["obese"], x, family=sm.families.Binomial()).fit()
    exact = float(truth.params["C(sex, contr.treatment('0'))[T.1]"])
    assert abs(male["coef"] - exact) <= male["se"], (male, exact)


def test_a_rate_model_with_exposure_and_clustered_errors(world: World,
                                                         researcher: Principal) -> None:
    service.define(world.platform.enclave, researcher, world.project_id, "visits",
                   "SELECT pid, sex, birth_year, CAST(coalesce(sbp, 120) / 30 AS INTEGER) "
                   "AS visits, 2020 - birth_year AS years FROM base")
    view = analyse(world, researcher, {"kind": "glm", "definition": "visits",
                                       "formula": "visits ~ birth_year + C(sex)",
                                       "family": "poisson",
                                       "exposure": "years", "errors": "cluster"})
    assert view.report.verdict in (Verdict.RELEASE, Verdict.SUPPRESS), view.reasons
    world.platform.outputs.request_release(researcher, view.output.id)
    record = json.loads(requests.download(world.ctx, researcher, view.output.id).payload)
    assert any("clustered by participant" in n for n in record["notes"])
    got = world.platform.outputs.table(researcher, view.output.id, TableFormat.CSV)
    frame = pl.read_csv(io.BytesIO(got.payload))
    assert {"rate_ratio", "rr_ci_low", "rr_ci_high"} <= set(frame.columns)


def test_a_formula_that_is_not_allowed_costs_nothing_and_names_the_researchers_column(
        world: World, researcher: Principal) -> None:
    before = len(requests.list_outputs(world.ctx, researcher, world.project_id))
    with pytest.raises(Invalid, match="is not one of"):
        analyse(world, researcher, {"kind": "glm", "definition": "base",
                                    "formula": "bmi ~ np.log(sbp)"})
    assert len(requests.list_outputs(world.ctx, researcher, world.project_id)) == before
    # refused once it read the data (a blocked output): the reason names the outcome asked for
    service.define(world.platform.enclave, researcher, world.project_id, "flat",
                   "SELECT pid, sex, 1 AS constant FROM base")
    view = analyse(world, researcher, {"kind": "glm", "definition": "flat",
                                       "formula": "constant ~ C(sex)", "family": "poisson"})
    assert view.report.verdict is Verdict.BLOCK
    assert "'constant'" in " ".join(view.reasons), view.reasons


def test_competing_risks_are_released_as_a_table_by_cause_as_estimated_inside(
        world: World, researcher: Principal) -> None:
    import warnings

    from lifelines import AalenJohansenFitter

    service.define(world.platform.enclave, researcher, world.project_id, "causes",
                   "SELECT pid, sex, (birth_year % 20) / 2.0 + 0.25 AS years, "
                   "CASE WHEN sbp > 150 THEN 1 WHEN bmi > 30 THEN 2 ELSE 0 END AS cause "
                   "FROM base WHERE birth_year IS NOT NULL")
    view = analyse(world, researcher, {"kind": "cumulative_incidence", "definition": "causes",
                                       "time": "years", "event": "cause", "unit": "years",
                                       "interval": 5})
    assert view.report.verdict in (Verdict.RELEASE, Verdict.SUPPRESS), view.reasons
    world.platform.outputs.request_release(researcher, view.output.id)
    got = world.platform.outputs.table(researcher, view.output.id, TableFormat.CSV)
    frame = pl.read_csv(io.BytesIO(got.payload), schema_overrides={"cause": pl.String})
    assert frame.columns[:4] == ["interval", "start", "end", "cause"]
    # custodian-side: lifelines' Aalen–Johansen on the same rows, at the first interval's end
    with world.platform.access.transaction() as db:
        project = db.get(Project, world.project_id)
        assert project is not None
    rows = world.platform.enclave.definition(project, "causes")[1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for cause in ("1", "2"):
            fitted = AalenJohansenFitter(calculate_variance=False, seed=1).fit(
                rows["years"].to_numpy(), rows["cause"].to_numpy(), int(cause))
            curve = fitted.cumulative_density_
            truth = float(curve[curve.index <= 5].iloc[-1, 0])
            shown = frame.filter((pl.col("cause") == cause) & (pl.col("end") == 5))
            assert abs(shown["incidence"][0] - truth) < 0.02, (cause, shown, truth)


def test_a_table_left_with_only_its_zeros_is_not_put_before_the_checkers(
        tmp_path: Path) -> None:
    """Sex by a programme offered to one sex only, in a project whose rules send small cells
    to review, once the total is out: every figure but the structural zeros repeats a total
    (within the table, or released) and is hidden, so the
    table says there is nothing to release, and asked for review anyway it is refused with
    that reason; no checker is sent it (issue 55: the checker got two zeros under an empty
    chart)."""
    world = build_world(tmp_path / "world", cohort=3000, fields=FIELDS)
    assert world.researcher is not None
    me = world.sign_in(world.researcher)
    service.define(world.platform.enclave, me, world.project_id, "programmes",
                   "SELECT pid, p31 AS sex, CASE WHEN p31 = 0 THEN 'cervical' ELSE "
                   "'prostate' END AS programme FROM participants")
    everyone = analyse(world, me, {"kind": "aggregate_sql",
                                   "sql": "SELECT count(*) AS n FROM programmes"})
    assert world.platform.outputs.request_release(
        me, everyone.output.id).status is OutputStatus.RELEASED  # the total, out already
    admin = world.sign_in(world.staff[Role.CUSTODIAN_ADMIN])
    world.platform.outputs.set_project_rules(admin, world.project_id,
                                             {"threshold": {"verdict": "review"}})
    view = analyse(world, me, {"kind": "crosstab", "definition": "programmes",
                               "rows": "sex", "columns": "programme"})
    assert view.report.verdict is Verdict.REVIEW, view.reasons
    nothing = [f for f in view.report.findings if f.rule == "nothing_left"]
    assert nothing and "coarser" in nothing[0].reason, (view.report.suppressed, view.reasons)
    with pytest.raises(Conflict, match="not sent to the output checkers"):
        world.platform.outputs.request_release(me, view.output.id,
                                               "the zeros are structural: sex-specific")
    assert requests.read(world.ctx, me, view.output.id).output.status == "checked"
    world.platform.close()


def test_an_output_takes_the_name_its_researcher_gives_it_over_the_api(
        world: World, researcher: Principal) -> None:
    """The API's analyse takes a name beside the analysis (made safe for a header), and an
    output given none is named from its request."""
    from fastapi.testclient import TestClient

    from strongroom.server.app import create_app
    from strongroom.server.security import CSRF_HEADER
    from tests.access_world import INSIDE

    assert world.researcher is not None
    world.clock.advance(seconds=31)  # a fresh code window for the sign-in
    with TestClient(create_app(world.platform), client=(INSIDE, 50000)) as client:
        login = client.post("/auth/login", json={"email": world.researcher.email,
                                                 "password": PASSWORD,
                                                 "code": world.code(world.researcher)})
        assert login.status_code == 200, login.text
        client.headers[CSRF_HEADER] = login.json()["csrf_token"]
        ask = {"kind": "frequency", "definition": "base", "variable": "smoking"}
        url = f"/projects/{world.project_id}/analyses"
        given = client.post(url, json={"analysis": ask, "name": "Table 2: smoking"})
        assert given.status_code == 201, given.text
        assert given.json()["filename"] == "Table-2-smoking.json"
        plain = client.post(url, json={"analysis": ask, "format": "csv"})
        assert plain.json()["filename"] == "frequency-base-smoking.csv"
        empty = client.post(url, json={"analysis": ask, "name": "../.."})
        assert empty.status_code == 400 and "letters or digits" in empty.text
