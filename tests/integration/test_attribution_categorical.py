"""A copy holding only categorical and date columns names its recipient (issue 57).

One world, built once: 2,000 synthetic participants, three extracts of two projects (A: the
leaker and an innocent; B: an innocent) of a cardiometabolic project's
fields — quasi-identifiers, dates, single- and multi-answer categories and a few measurements
— through the risk gate at its defaults (k = 5: the dates are released by month or coarser,
year of birth in bands). The leak keeps only the categorical and date columns (by the
dictionary's value types), drops the IDs, shuffles the rows and re-pairs them: each row keeps
a random half of its fields (a field's array columns move together, as a leaker keeping the
data usable must keep them) and takes the rest from another row of the same sex and month of
birth. Ground truth is read custodian-side from the files as written.

Before session 33 such a copy was inconclusive (issue 57: membership ln P 0.0, band origins
−2.8 at best): no column of it carried a mark, and its rows link to classes of hundreds.
The marks it now carries are in the *order* of each multi-answer field's codes
(``extracts/orders.py``), read from each row's tuple of the field with no row linked: here
only self-reported illnesses (``p20002``), the one field whose master writes its sets in no
fixed order; the dates were released as ``*``.

Four runs (keys new each run; the last row one run), ln of each recipient's own p-value;
naming needs the system-wide bound ≤ 10⁻⁹ (ln −20.7) after the union:

| file | rows linked | positions | its recipient | least of the others |
|---|---|---|---|---|
| the leaker's categories and dates, re-paired | 128–154 | 1,344–1,408 | −584 … −595 | −1.1 … 0 |
| an innocent's, the same | — | — | −593 … −657 | −0.5 … 0 |
| the raw cohort, the same | — | — | — | −2.3 … 0 |
| the leaker's, each array column re-paired alone | — | — | −86 (one run) | 0 |

The module runs in about 30–36 s.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from strongroom.access import projects
from strongroom.access.context import Principal
from strongroom.access.models import Project
from strongroom.access.roles import Role
from strongroom.access.states import ExportStatus
from strongroom.cohort.dictionary import ValueType
from strongroom.cohort.model import EID, parse_column_name
from strongroom.cohort.synth import synthesise
from strongroom.extracts import accuse, service
from tests.access_world import World, build_world
from tests.innocence import INNOCENT

FIELDS = [31, 34, 52, 53, 54, 191, 738, 1558, 2178, 2443, 4080, 6138, 6150, 6153, 6177,
          20002, 20107, 20116, 20118, 21000, 21001, 22032, 30690]
QIS = ["p31", "p52"]  # sex and month of birth: categorical, kept with each row's cells
N = 2000


@dataclass
class Categorical:
    world: World
    root: Path
    master: pl.DataFrame
    leaker: str
    innocents: list[str]
    copies: dict[str, pl.DataFrame]  # extract id -> the file as written
    analyst: Principal

    def attribute(self, frame: pl.DataFrame, name: str) -> service.AttributionReport:
        path = self.root / name
        frame.write_csv(path)
        return service.attribute(self.world.ctx, self.analyst, path,
                                 store=self.world.platform.store)


def _project(world: World, lead: str, title: str) -> str:
    project = projects.create(world.ctx, None, title=title, purpose="Cardiometabolic risk",
                              lead_id=lead, starts_on=world.clock().date(),
                              expires_on=world.clock().date().replace(year=2027),
                              fields=FIELDS).project.id
    with world.ctx.transaction() as db:
        row = db.get(Project, project)
        assert row is not None
        row.export = ExportStatus.APPROVED
    return project


@pytest.fixture(scope="module")
def categorical(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Categorical]:
    root = tmp_path_factory.mktemp("categorical")
    world = build_world(root)
    world.platform.store.write_version(synthesise(N, 29))
    assert world.researcher is not None and world.outsider is not None
    a = _project(world, world.researcher.person_id, "Study A")
    b = _project(world, world.outsider.person_id, "Study B")
    admin = world.sign_in(world.member(Role.CUSTODIAN_ADMIN))
    copies = {}
    for i, project in enumerate([a, a, b]):
        made = service.create_extract(world.ctx, admin, project, "csv", root / f"x{i}.csv",
                                      store=world.platform.store, watch=world.platform.watch)
        copies[made.extract_id] = pl.read_csv(made.path, infer_schema_length=None)
    ids = list(copies)
    master = world.platform.store.load(["participants"]).participants
    analyst = world.sign_in(world.member(Role.SECURITY_ANALYST))
    yield Categorical(world, root, master, ids[0], ids[1:], copies, analyst)
    world.platform.close()


def categorical_columns(frame: pl.DataFrame, world: World) -> list[str]:
    """The columns of ``frame`` whose fields are categories or dates (the dictionary's)."""
    keep = []
    for column in frame.columns:
        if column == EID:
            continue
        fld = world.ctx.dictionary.field(parse_column_name(column, world.ctx.dictionary)
                                         .field_id)
        if fld.is_categorical or fld.value_type is ValueType.DATE:
            keep.append(column)
    return keep


def _field(column: str) -> str:
    return column.rsplit("_a", 1)[0] if "_a" in column else column


def repair(rows: pl.DataFrame, seed: int, qis: list[str] = QIS,
           by_column: bool = False) -> pl.DataFrame:
    """Rows shuffled; each keeps a random half of its fields (a field's array columns
    together; each column on its own when ``by_column``) and takes the rest from another row
    of the same ``qis``."""
    rng = np.random.default_rng(seed)
    rows = rows[rng.permutation(rows.height)]
    group = pl.concat_str([pl.col(c).cast(pl.String).fill_null("-") for c in qis],
                          separator="|")
    g = rows.select(group.alias("g"))["g"].to_numpy()
    partner = np.arange(rows.height)
    for value in np.unique(g):
        r = np.flatnonzero(g == value)
        if len(r) > 1:
            partner[r] = np.roll(r, 1 + int(rng.integers(len(r) - 1)))
    other = rows[partner]
    out = {c: rows[c] for c in rows.columns}
    group_of = (lambda c: c) if by_column else _field
    for name in dict.fromkeys(group_of(c) for c in rows.columns if c not in qis):
        keep = pl.Series(rng.random(rows.height) < 0.5)
        for c in (c for c in rows.columns if group_of(c) == name):
            out[c] = rows[c].zip_with(keep, other[c])
    return pl.DataFrame(list(out.values()))


def _named(report: service.AttributionReport) -> set[str]:
    return {a.extract_id for a in report.accused}


def _least_innocent(report: service.AttributionReport, inside: set[str]) -> float:
    return min((s.log_p for s in report.scores if s.extract_id not in inside), default=0.0)


def _own(report: service.AttributionReport, extract: str) -> tuple[float, float]:
    """The recipient's ln P (its best kind, before the union) and its system-wide ln bound."""
    found = {s.extract_id: s for s in report.scores}.get(extract)
    return (found.log_p, found.log_bound) if found else (0.0, 0.0)


def leak_of(categorical: Categorical, extract: str, seed: int) -> pl.DataFrame:
    copy = categorical.copies[extract]
    return repair(copy.select(categorical_columns(copy, categorical.world)), seed)


def test_a_categorical_and_date_copy_names_its_recipient(categorical: Categorical) -> None:
    leak = leak_of(categorical, categorical.leaker, 1)
    assert leak.height >= N * 0.95 and EID not in leak.columns
    report = categorical.attribute(leak, "categorical.csv")
    own, bound = _own(report, categorical.leaker)
    innocent = _least_innocent(report, {categorical.leaker})
    assert report.values is not None
    print(f"\nleaker ln P {own:.1f}, bound {bound:.1f}, least innocent {innocent:.1f}, "
          f"linked {report.rows_linked}, columns {len(leak.columns)}, positions "
          f"{ {c: m.cells for c, m in report.values.marks.models.items()} }, dates "
          f"{ {c: leak[c].unique().head(3).to_list() for c in ('p53_i0', 'p191')} }")
    assert set(report.values.marks.models) == {"p20002_i0_a*"}  # the only marked field
    assert _named(report) == {categorical.leaker}
    assert bound <= math.log(accuse.THRESHOLD)
    assert innocent > INNOCENT


def test_an_innocents_categorical_copy_names_only_it(categorical: Categorical) -> None:
    innocent = categorical.innocents[-1]
    report = categorical.attribute(leak_of(categorical, innocent, 2), "innocent.csv")
    least = _least_innocent(report, {innocent})
    print(f"\ninnocent's own ln P {_own(report, innocent)[0]:.1f}, least other {least:.1f}")
    assert _named(report) == {innocent}
    assert least > INNOCENT


def test_the_raw_cohort_s_categories_name_no_one(categorical: Categorical) -> None:
    copy = categorical.copies[categorical.leaker]
    columns = [c for c in categorical_columns(copy, categorical.world)
               if c in categorical.master.columns]
    raw = categorical.master.select(columns)
    report = categorical.attribute(repair(raw, 3), "raw.csv")
    print(f"\nraw: least ln P {_least_innocent(report, set()):.1f}")
    assert not _named(report)
    assert _least_innocent(report, set()) > INNOCENT


def test_array_columns_split_between_rows_name_no_innocent(categorical: Categorical) -> None:
    """Each array column re-paired on its own: rows' answers are torn between two people
    (missing and repeated codes), and most sets are no master set: the marks are mostly
    gone (what a seller must do to escape, at the cost of every multi-answer field), and
    no innocent is named."""
    copy = categorical.copies[categorical.leaker]
    leak = repair(copy.select(categorical_columns(copy, categorical.world)), 4, by_column=True)
    report = categorical.attribute(leak, "split.csv")
    own = _own(report, categorical.leaker)[0]
    least = _least_innocent(report, {categorical.leaker})
    print(f"\nsplit: leaker ln P {own:.1f}, least innocent {least:.1f}")
    assert _named(report) <= {categorical.leaker}
    assert least > INNOCENT
