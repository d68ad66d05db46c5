"""Traceable extracts: the attack table, utility and speed.   python benchmarks/extracts.py

A 500,000-participant synthetic cohort in a fresh store; six real projects with the export
permission each get a real 500,000 × 20 extract (CSV) through ``service.create_extract``; 994
more registered recipients get manifests (symbol keys derive from the master key and the
extract id, so they need no files; having no files, they have no decoys). Leaked copies are
then attacked as the issue lists, linked to the cohort by value (``linkage.link``; IDs only
where the attack keeps them) and scored against all 1,000 recipients. For every attack, a
ladder of row counts: "rows needed" is the smallest count at which every trial named exactly
the right recipient(s). No innocent may ever be named; the smallest false-accusation bound any
innocent reached is printed too, and the bound is checked on the null trials those innocents
are (their keys never touched the file).

    --quick      50,000 participants, 100 recipients, 3 trials: a smoke run in ~2 minutes
    --json PATH  write every figure as JSON
    --trials N   trials per attack and row count (default 10)
    --only NAME  run only the attack rows whose name contains NAME (repeatable): the attack
                 table and its null check, no round trips, utility or speed
    --speed-only  build the world, then time only the embedding and attribution
    --world DIR  with --speed-only: keep the world in DIR; later runs with the same DIR
                 reuse it and time attribution only (no 2-minute rebuild)
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import shutil
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import openpyxl
import polars as pl
from sqlalchemy import update

from strongroom.access import institutions, people, projects, pseudonyms
from strongroom.access.bootstrap import bootstrap
from strongroom.access.context import Settings
from strongroom.access.models import Project
from strongroom.access.states import ExportStatus, Vetting
from strongroom.cohort.dictionary import ValueType
from strongroom.cohort.model import EID, parse_column_name
from strongroom.cohort.store import init_store
from strongroom.cohort.synth import synthesise
from strongroom.extracts import (
    accuse,
    carriers,
    codes,
    decoys,
    evidence,
    labels,
    linkage,
    manifest,
    multiset,
    residual,
    service,
)
from strongroom.extracts import tables as suspect_tables
from strongroom.extracts.models import ExtractManifest
from strongroom.platform import Platform
from strongroom.watch.policy import set_limits

FIELDS = [31, 34, 48, 50, 4079, 4080, 21001, 21002, 30000, 30020, 30690, 30700, 30710, 30740,
          30750, 30760, 30780, 30870]  # 20 participant-table columns
# A wider extract beside them, for the attacks on coarse columns: the same fields and
# categories, a date of attendance and lifestyle codes, as many research extracts hold. The
# custodian allows that date at day level (``allow``: it may carry marks), so the risk gate
# keeps it whole and coarsens the other quasi-identifiers instead.
WIDE_FIELDS = [*FIELDS, 53, 54, 1558, 2178, 2443, 20116, 21000, 22032]
DAY_LEVEL = [53]  # date of attending the assessment centre
DATE = "p53_i0"
TRUE_ROWS = 6  # real extracts: one lone leaker and a gang of five (and the wide extract)
REGRESSIONS = {  # outcome: predictors (a fixed reference panel)
    "p4080_i0_a0": ["p21001_i0", "p34", "p31", "p30690_i0", "p30740_i0"],
    "p30750_i0": ["p21001_i0", "p30740_i0", "p31", "p34"],
    "p30780_i0": ["p30690_i0", "p30760_i0", "p30870_i0", "p31"],
    "p30710_i0": ["p21001_i0", "p30000_i0", "p31", "p34"],
    "p30760_i0": ["p21001_i0", "p30870_i0", "p31"],
    "p21002_i0": ["p50_i0", "p21001_i0", "p31"],
}


@dataclass
class World:
    platform: Platform
    master: pl.DataFrame  # eid + the 20 columns
    copies: dict[str, pl.DataFrame]  # extract id -> released rows with master eid ("_eid")
    project_of: dict[str, str]
    maps: dict[str, pl.DataFrame]
    recipients: list[accuse.Recipient]
    carriers: list[carriers.Carrier]
    foreign: pl.DataFrame  # another cohort's rows, same columns
    columns: list[str]
    numeric: dict[str, int]  # numeric column -> recorded decimals
    decoy_sets: dict[str, decoys.DecoySet] = field(default_factory=dict)  # the real extracts'
    timings: dict[str, float] = field(default_factory=dict)
    wide: str = ""  # the wide extract's id (its copy is in ``copies``)
    wide_columns: list[str] = field(default_factory=list)

    @property
    def lone(self) -> str:
        return next(iter(self.copies))

    @property
    def gang(self) -> list[str]:
        return [e for e in list(self.copies)[1:] if e != self.wide]


def say(text: str) -> None:
    print(text, flush=True)


# -- the world ------------------------------------------------------------------------------

def build(root: Path, n: int, registered: int, seed: int) -> World:
    t0 = time.perf_counter()
    cohort = synthesise(n, seed)
    say(f"synthesised {n:,} participants in {time.perf_counter() - t0:.1f} s")
    store = init_store(root / "data", key_file=root / "master.key")
    store.write_version(cohort)
    store.close()
    platform = Platform.open(root / "data", root / "master.key",
                             settings=Settings(password_profile="CHEAPEST"))
    ctx = platform.access
    bootstrap(ctx, institution="Custodian", country="GB", jurisdiction="UK GDPR",
              networks=["10.0.0.0/8"], email="admin@custodian.test", name="Admin",
              password="a long benchmark passphrase")
    today = dt.date.today()
    copies: dict[str, pl.DataFrame] = {}
    project_of: dict[str, str] = {}
    maps: dict[str, pl.DataFrame] = {}
    create_seconds = []
    wide = ""
    for i in range(TRUE_ROWS + 1):
        fields = WIDE_FIELDS if i == TRUE_ROWS else FIELDS
        inst = institutions.create(ctx, None, name=f"University {i}", country="GB",
                                   jurisdiction="UK GDPR", networks=["10.0.0.0/8"])
        lead = people.create(ctx, None, institution_id=inst.id, email=f"lead{i}@uni{i}.test",
                             name=f"Lead {i}", roles=["researcher"], vetting=Vetting.APPROVED,
                             password="a long benchmark passphrase")
        project = projects.create(ctx, None, title=f"Study {i}",
                                  purpose="Cardiometabolic risk factors and outcomes",
                                  lead_id=lead.person.id, starts_on=today,
                                  expires_on=today + dt.timedelta(days=365), fields=fields)
        with ctx.transaction() as db:  # the access committee's approval, recorded directly
            db.execute(update(Project).where(Project.id == project.project.id)
                       .values(export=ExportStatus.APPROVED))
            # whole-cohort extracts are this benchmark's subject: limits above them
            for scope, target in (("project", project.project.id), ("institution", inst.id),
                                  ("person", lead.person.id)):
                set_limits(db, scope, target, {"record_participants": 2 * n,
                                               "lifetime_participants": 2 * n}, "benchmark")
        out = root / f"extract-{i}.csv"
        made = service.create_extract(ctx, None, project.project.id, "csv", out,
                                      store=platform.store, watch=platform.watch,
                                      allow=DAY_LEVEL if fields is WIDE_FIELDS else ())
        wide = made.extract_id if fields is WIDE_FIELDS else wide
        create_seconds.append(made.seconds)
        with ctx.transaction() as db:
            maps[project.project.id] = pseudonyms.load(ctx, db.get(Project, project.project.id))
        released = pl.read_csv(out, infer_schema_length=None)
        copies[made.extract_id] = released.join(
            maps[project.project.id].rename({"eid": "_eid", "pid": EID}), on=EID, how="left")
        project_of[made.extract_id] = project.project.id
        say(f"extract {i + 1}/{TRUE_ROWS + 1}: {made.rows:,} rows, carriers {made.carriers}, "
            f"{made.seconds:.1f} s")
    with ctx.transaction() as db:
        narrow, broad = manifest.get(db, next(iter(copies))), manifest.get(db, wide)
        real = decoys.DecoySet.from_bytes(manifest.open_decoys(ctx.key, narrow))
        registry = decoys.DecoySet(real.rows.head(0), real.specs).to_bytes()  # no file, no decoys
        fakes = []
        for j in range(registered - TRUE_ROWS - 1):
            extract_id = f"ext_bench{j:05d}"
            # every other registered recipient holds the wide extract's columns: innocents
            # whose keys mark the same dates and band the same fields (the null of those)
            template = narrow if j % 2 == 0 else broad
            fakes.append(ExtractManifest(
                id=extract_id, project_id=f"prj_bench{j:05d}", institution_id=f"ins_b{j:05d}",
                recipient_id=f"per_b{j:05d}",
                key_id=codes.key_id(codes.recipient_key(ctx.key, extract_id)),
                fields=template.fields, columns=template.columns, carriers=template.carriers,
                decoys_sealed=manifest.seal_decoys(ctx.key, extract_id, registry),
                decoy_count=0, rows=template.rows,
                cohort_version=template.cohort_version, file_sha256="0" * 64, format="csv",
                created_at=template.created_at, created_by="benchmark",
                withheld_share=template.withheld_share, bands=template.bands))
        db.add_all(fakes)
    with ctx.transaction() as db:
        records = manifest.list_all(db)
        sets = {m.id: decoys.DecoySet.from_bytes(manifest.open_decoys(ctx.key, m))
                for m in records if m.decoy_count}
        every_carrier = sorted({c for m in records for c in manifest.carriers_of(m)},
                               key=lambda c: (c.column, c.amplitude, c.low, c.high))
    participants = cohort.participants

    def of(fields: list[int]) -> list[str]:
        return [c for c in participants.columns if c != EID and parse_column_name(
            c, ctx.dictionary).field_id in fields]

    columns, wide_columns = of(FIELDS), of(WIDE_FIELDS)
    master = participants.select([EID, *wide_columns]).with_columns(pl.col(EID).cast(pl.Int64))
    numeric = {}
    for column in columns:
        fld = ctx.dictionary.field(parse_column_name(column, ctx.dictionary).field_id)
        if fld.value_type in (ValueType.INTEGER, ValueType.CONTINUOUS):
            numeric[column] = fld.precision or 0
    foreign = synthesise(max(n // 10, 30_000), seed + 1).participants.select(columns)
    world = World(platform, master, copies, project_of, maps,
                  manifest.recipients(ctx.key, records),
                  every_carrier, foreign, columns, numeric, sets, wide=wide,
                  wide_columns=wide_columns)
    world.timings["create_extract_s"] = float(np.median(create_seconds))
    return world


# -- attacks --------------------------------------------------------------------------------

Attack = Callable[[World, int, np.random.Generator], tuple[pl.DataFrame, set[str]]]


def _rows(world: World, extract_id: str, n: int, rng: np.random.Generator) -> pl.DataFrame:
    copy = world.copies[extract_id]
    return copy[rng.choice(copy.height, n, replace=False)]


def _no_id(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.drop([c for c in (EID, "_eid") if c in frame.columns])


def id_dropped(world: World, n: int, rng: np.random.Generator) -> tuple[pl.DataFrame, set[str]]:
    return _no_id(_rows(world, world.lone, n, rng)), {world.lone}


def id_rekeyed(world: World, n: int, rng: np.random.Generator) -> tuple[pl.DataFrame, set[str]]:
    rows = _rows(world, world.lone, n, rng)
    return _no_id(rows).with_columns(
        pl.Series("participant", rng.permutation(n) + 5_000_000)), {world.lone}


def id_kept(world: World, n: int, rng: np.random.Generator) -> tuple[pl.DataFrame, set[str]]:
    return _rows(world, world.lone, n, rng).drop("_eid"), {world.lone}


def rounded(places: int) -> Attack:
    def attack(world: World, n: int, rng: np.random.Generator
               ) -> tuple[pl.DataFrame, set[str]]:
        rows = _no_id(_rows(world, world.lone, n, rng))
        return rows.with_columns(
            pl.col(c).cast(pl.Float64).round(d - places) if d - places >= 0 else
            ((pl.col(c).cast(pl.Float64) / 10 ** (places - d)).round(0) * 10 ** (places - d))
            for c, d in world.numeric.items()), {world.lone}
    return attack


def noised(world: World, n: int, rng: np.random.Generator) -> tuple[pl.DataFrame, set[str]]:
    """Gaussian noise with SD 10 × one unit of precision (the marks' amplitude), every
    numeric cell, rounded back to the recorded precision."""
    rows = _no_id(_rows(world, world.lone, n, rng))
    return rows.with_columns(
        (pl.col(c).cast(pl.Float64) + pl.Series(rng.normal(0, 10 * 10.0**-d, n))).round(d)
        for c, d in world.numeric.items()), {world.lone}


def five_columns(world: World, n: int, rng: np.random.Generator
                 ) -> tuple[pl.DataFrame, set[str]]:
    carrier_columns = {c.column for c in world.carriers}
    while True:
        kept = list(rng.choice(world.columns, 5, replace=False))
        if carrier_columns & set(kept):
            break
    return _no_id(_rows(world, world.lone, n, rng)).select(kept), {world.lone}


def colluders(c: int, how: str) -> Attack:
    def attack(world: World, n: int, rng: np.random.Generator
               ) -> tuple[pl.DataFrame, set[str]]:
        gang = world.gang[:c]
        common = world.master[EID].to_numpy()  # the participants every colluder holds
        for g in gang:
            common = np.intersect1d(common, world.copies[g]["_eid"].drop_nulls().to_numpy())
        eids = rng.choice(common, n, replace=False)
        aligned = [world.copies[g].filter(pl.col("_eid").is_in(eids))
                   .unique("_eid", keep="first").sort("_eid") for g in gang]
        stack = {col: np.stack([a[col].cast(pl.Float64).to_numpy() for a in aligned])
                 for col in world.columns}
        who = rng.integers(0, c, n)
        mixed = {col: v[rng.integers(0, c, n) if how == "cell" else who, np.arange(n)]
                 for col, v in stack.items()}
        frame = pl.DataFrame(mixed)[rng.permutation(n)]
        return frame, set(gang)
    return attack


def union(c: int, how: str) -> Attack:
    """c recipients pool their copies and keep one row per participant (the union), as a
    leaker's ``drop_duplicates`` would: ``in order`` keeps the first copy's row wherever it
    has one, ``random`` a colluder's at random. Participants are matched by their true eid
    (custodian-side: the best a leaker could do); decoys, each with its own pseudonym, stay.
    """
    def attack(world: World, n: int, rng: np.random.Generator
               ) -> tuple[pl.DataFrame, set[str]]:
        gang = world.gang[:c]
        parts = []
        for i, g in enumerate(gang):
            own = -(i + 1) * 10**12 - pl.col(EID).cast(pl.Int64)  # a decoy is its own row
            parts.append(world.copies[g].select(
                *world.columns,
                pl.when(pl.col("_eid").is_null()).then(own).otherwise(pl.col("_eid"))
                .cast(pl.Int64).alias("_who")))
        pooled = pl.concat(parts, how="vertical_relaxed")
        if how == "random":
            pooled = pooled[rng.permutation(pooled.height)]
        kept = pooled.unique("_who", keep="first", maintain_order=True)
        return kept[rng.choice(kept.height, n, replace=False)].drop("_who"), set(gang)
    return attack


def with_foreign(inner: Attack) -> Attack:
    """``inner``'s rows, and as many rows of another cohort: a row count of n reads 2n rows,
    n of them the leaker's (the issue's "no change": the same leaked rows, diluted)."""
    def attack(world: World, n: int, rng: np.random.Generator
               ) -> tuple[pl.DataFrame, set[str]]:
        frame, guilty = inner(world, n, rng)
        other = world.foreign[rng.choice(world.foreign.height, n, replace=False)]
        other = other.select(frame.columns).cast(dict(frame.schema))  # type: ignore[arg-type]
        both = pl.concat([frame, other])
        return both[rng.permutation(both.height)], guilty
    return attack


def _kind(world: World, column: str) -> ValueType:
    ctx = world.platform.access
    return ctx.dictionary.field(parse_column_name(column, ctx.dictionary).field_id).value_type


def continuous_dropped(world: World, n: int, rng: np.random.Generator
                       ) -> tuple[pl.DataFrame, set[str]]:
    """Every continuous column (all the carriers among them) dropped; quasi-identifiers,
    codes, integers and dates kept."""
    kept = [c for c in world.columns if _kind(world, c) is not ValueType.CONTINUOUS]
    return _no_id(_rows(world, world.lone, n, rng)).select(kept), {world.lone}


def fewest_marks(world: World, n: int, rng: np.random.Generator
                 ) -> tuple[pl.DataFrame, set[str]]:
    """The seller knows which columns carry marks, and how densely, and keeps the 5 that
    carry fewest (unmarked ones first, then the sparsest)."""
    density = {c.column: c.density for c in world.carriers}
    kept = sorted(world.columns, key=lambda c: (density.get(c, 0.0), c))[:5]
    return _no_id(_rows(world, world.lone, n, rng)).select(kept), {world.lone}


def fewest_marks_wide(world: World, n: int, rng: np.random.Generator
                      ) -> tuple[pl.DataFrame, set[str]]:
    """The same choice in the wide extract: its 5 columns with fewest marks are categories."""
    density = {c.column: c.density for c in world.carriers}
    kept = sorted(world.wide_columns, key=lambda c: (density.get(c, 0.0), c))[:5]
    return _no_id(_rows(world, world.wide, n, rng)).select(kept), {world.wide}


def derived_recomputed(world: World, n: int, rng: np.random.Generator
                       ) -> tuple[pl.DataFrame, set[str]]:
    """BMI recomputed from weight and height (its marks gone); every other carrier dropped."""
    carrier_columns = {c.column for c in world.carriers}
    rows = _no_id(_rows(world, world.lone, n, rng))
    bmi = (pl.col("p21002_i0") / (pl.col("p50_i0") / 100) ** 2).round(4).alias("p21001_i0")
    kept = [c for c in world.columns if c not in carrier_columns]
    return rows.select([*kept, bmi]), {world.lone}


def categorical_and_dates(world: World, n: int, rng: np.random.Generator
                          ) -> tuple[pl.DataFrame, set[str]]:
    """The wide extract's categorical and date columns, as released (quasi-identifiers as the
    risk gate coarsened them, the day-level date with its marks): every number dropped."""
    kept = [c for c in world.wide_columns if _kind(world, c) in (
        ValueType.CATEGORICAL_SINGLE, ValueType.CATEGORICAL_MULTIPLE, ValueType.DATE)]
    return _no_id(_rows(world, world.wide, n, rng)).select(kept), {world.wide}


def _date(frame: pl.DataFrame) -> pl.DataFrame:
    """The day-level date as a date (copies are read from CSV as written)."""
    return frame.with_columns(pl.col(DATE).cast(pl.String).str.to_date(strict=False))


def categorical_and_dates_as(how: str) -> Attack:
    """``categorical_and_dates`` and one of the leaker's cheap counters: every code re-coded
    to its text label and every date moved by 90 days (``text, shifted``), or the dates
    truncated to their month (``month``)."""
    def attack(world: World, n: int, rng: np.random.Generator
               ) -> tuple[pl.DataFrame, set[str]]:
        frame, guilty = categorical_and_dates(world, n, rng)
        frame = _date(frame)
        if how == "month":
            return frame.with_columns(pl.col(DATE).dt.truncate("1mo")), guilty
        dictionary = world.platform.access.dictionary
        labelled = []
        for column in frame.columns:
            fld = dictionary.field(parse_column_name(column, dictionary).field_id)
            coding = dictionary.coding_of(fld) if fld.is_categorical else None
            if coding is not None and frame[column].dtype != pl.String:
                labelled.append(frame[column].cast(pl.Int64).cast(pl.String).replace_strict(
                    dict(coding.codes), default=None).alias(column))
        return frame.with_columns(labelled).with_columns(
            pl.col(DATE) + pl.duration(days=90)), guilty
    return attack


def repair(rows: pl.DataFrame, partners: pl.DataFrame, qis: list[str],
           rng: np.random.Generator) -> pl.DataFrame:
    """Each row keeps a random half of its columns and takes the rest from a row of
    ``partners`` with the same ``qis`` (another row where it can): no row is anyone's."""
    key = pl.concat_str([pl.col(c).cast(pl.String).fill_null("-") for c in qis], separator="|")
    mine = rows.select(key.alias("g"))["g"].to_numpy()
    theirs = partners.select(key.alias("g"))["g"].to_numpy()
    pick = np.arange(rows.height) % max(partners.height, 1)
    order = np.argsort(theirs, kind="stable")
    sorted_theirs = theirs[order]
    start = np.searchsorted(sorted_theirs, mine, side="left")
    count = np.searchsorted(sorted_theirs, mine, side="right") - start
    has = count > 0
    pick[has] = order[start[has] + (rng.random(int(has.sum())) * count[has]).astype(np.int64)]
    other = partners[pick]
    out = {}
    for column in rows.columns:
        if column in qis:
            out[column] = rows[column]
            continue
        keep = pl.Series(rng.random(rows.height) < 0.5)
        out[column] = rows[column].zip_with(keep, other[column].cast(rows[column].dtype))
    return pl.DataFrame(list(out.values()))


REPAIR_QIS = ["p31", "p34"]  # sex and year of birth as released (in bands)


def repaired(with_second: bool) -> Attack:
    """The lone leaker's rows, each split between two rows of the same sex and year of birth:
    half its columns from another row of its own copy, or of a second recipient's copy
    (``with_second``: both are guilty). IDs dropped, shuffled: no row links to anyone."""
    def attack(world: World, n: int, rng: np.random.Generator
               ) -> tuple[pl.DataFrame, set[str]]:
        rows = _no_id(_rows(world, world.lone, n, rng))
        second = world.gang[0]
        partners = (_no_id(_rows(world, second, n, rng)) if with_second
                    else rows[rng.permutation(rows.height)])
        frame = repair(rows, partners, REPAIR_QIS, rng)
        return frame[rng.permutation(frame.height)], (
            {world.lone, second} if with_second else {world.lone})
    return attack


def decoys_alone(world: World, n: int, rng: np.random.Generator
                 ) -> tuple[pl.DataFrame, set[str]]:
    """The lone leaker's decoys, among n rows of the cohort's own (unmarked) values: no
    mark and no subset left, only the decoys."""
    copy = world.copies[world.lone]
    own = _no_id(copy.filter(pl.col("_eid").is_null()))
    cohort = world.master[rng.choice(world.master.height, n, replace=False)]
    cohort = cohort.select(own.columns).cast(dict(own.schema))  # type: ignore[arg-type]
    both = pl.concat([own, cohort])
    return both[rng.permutation(both.height)], {world.lone}


ATTACKS: list[tuple[str, Attack, list[int], int]] = [  # name, attack, ladder, target rows
    ("ID kept, rows shuffled", id_kept, [25, 50, 100, 500], 500),
    ("ID column dropped, rows shuffled", id_dropped, [25, 50, 100, 500], 500),
    ("ID re-keyed, rows shuffled", id_rekeyed, [25, 50, 100, 500], 500),
    ("plus every numeric column rounded 10× coarser", rounded(1), [100, 250, 500, 1000], 1000),
    ("rounded 100× coarser", rounded(2), [1000, 2500, 5000, 25_000], 25_000),
    ("noise of 10× the mark amplitude on every cell", noised, [1000, 1500, 2000, 2500, 3000],
     2500),
    ("only 5 of 20 columns kept", five_columns, [250, 500, 1000, 5000], 5000),
    ("2 recipients mixing cell-wise", colluders(2, "cell"), [250, 500, 1000, 5000], 5000),
    ("3 recipients mixing row-wise", colluders(3, "row"), [250, 500, 1000, 5000], 5000),
    ("5 recipients mixing cell-wise", colluders(5, "cell"), [500, 1000, 2500, 5000], 5000),
    ("5 recipients mixing row-wise", colluders(5, "row"), [500, 1000, 2500, 5000], 5000),
    ("union of 3 copies, one row per participant (random)", union(3, "random"),
     [1000, 2000, 5000], 2000),
    ("union of 3 copies, one row per participant (in order)", union(3, "in order"),
     [1000, 2000, 5000], 2000),
    ("half foreign rows + ID dropped", with_foreign(id_dropped), [500], 500),
    ("half foreign rows + rounded 10×", with_foreign(rounded(1)), [1000], 1000),
    ("half foreign rows + noise 10×", with_foreign(noised), [2500, 3000], 2500),
    ("half foreign rows + 5 mixing cell-wise", with_foreign(colluders(5, "cell")), [5000],
     5000),
    ("every continuous column dropped (QIs, codes, integers kept)", continuous_dropped,
     [500, 1000, 2500, 5000], 5000),
    ("the 5 columns with the fewest marks kept", fewest_marks,
     [500, 1000, 2500, 5000], 5000),
    ("BMI recomputed from weight and height, other carriers dropped", derived_recomputed,
     [500, 1000, 2500, 5000], 5000),
    ("re-paired within the copy (half of each row's columns from another row)",
     repaired(False), [500, 1000, 2000], 2000),
    ("re-paired with a second recipient's copy", repaired(True), [1000, 2000, 5000], 2000),
    ("only categorical and date columns", categorical_and_dates, [500, 1000, 2000, 5000],
     2000),
    ("only categorical and date columns, text labels, dates shifted 90 days",
     categorical_and_dates_as("text, shifted"), [1000, 2000, 5000], 2000),
    ("only categorical and date columns, dates truncated to the month",
     categorical_and_dates_as("month"), [1000, 2000, 5000], 2000),
    ("the 5 columns with the fewest marks kept, wide extract", fewest_marks_wide,
     [5000, 25_000], 5000),
    ("one recipient's decoys among the cohort's unmarked rows", decoys_alone, [1000, 5000],
     5000),
]


@dataclass
class Trial:
    named_right: bool
    innocents_named: int
    guilty_log10_bound: float
    innocent_log10_bound: float  # the smallest (most suspicious) innocent bound
    innocent_max_tardos: float
    innocent_hypothesis_bounds: list[float]  # per-recipient tail bounds, no union factor
    innocent_score_bounds: list[float]  # each score's own tail bound (two per recipient)
    rows_linked: int
    seconds: float
    guilty_named: int = 0  # of the guilty, how many were named


def judge(world: World, frame: pl.DataFrame, guilty: set[str], seed: int) -> Trial:
    t0 = time.perf_counter()
    ctx = world.platform.access
    frame, _ = labels.as_codes(frame, ctx.dictionary, WIDE_FIELDS)  # as attribution does
    marked = {c.column for c in world.carriers}
    linked = linkage.link(frame, world.master, ctx.dictionary, world.maps, marked=marked)
    found = evidence.gather(frame, linked, world.recipients, world.decoy_sets, world.master,
                            ctx.dictionary)
    bias = codes.bias_key(ctx.key)
    # the marks read from values alone (``multiset.py``), as ``service.attribute`` reads them
    exact, categories = service.value_blocks(linked, world.master, ctx.dictionary, marked)
    values = multiset.gather(multiset.by_name(frame, linked.values, world.carriers),
                             world.master, world.carriers, world.recipients, bias, seed=seed,
                             keys=exact, categories=categories)
    _, scores = accuse.judge(linked.eids, dict(linked.values), world.master, world.carriers,
                             world.recipients, bias, seed=seed, other=found.other() | {
                                 multiset.KIND: values.other(),
                                 residual.KIND: accuse.Other({}, len(world.recipients))})
    rest = residual.gather(linked.eids, dict(linked.values), world.master, world.carriers,
                           world.recipients, [s.extract_id for s in accuse.accused(scores)],
                           bias, seed=seed)
    if rest.rows:  # the rows every named recipient withheld: a union's other copies
        scores = residual.amend(scores, rest.log_p)
    named = {s.extract_id for s in accuse.accused(scores)}
    innocent = [s for s in scores if s.extract_id not in guilty]
    guilty_scores = [s for s in scores if s.extract_id in guilty]
    right = bool(named) and named <= guilty if len(guilty) > 1 else named == guilty
    return Trial(right, len(named - guilty),
                 min(s.log_bound for s in guilty_scores) / math.log(10),
                 min(s.log_bound for s in innocent) / math.log(10),
                 max(s.tardos for s in innocent),
                 [math.exp(s.log_p) for s in innocent],
                 [math.exp(v) for s in innocent for v in s.kind_log_p],
                 int(np.sum(linked.eids >= 0)), time.perf_counter() - t0,
                 len(named & guilty))


def attack_table(world: World, trials: int, scale: float,
                 only: list[str] | None = None) -> list[dict[str, Any]]:
    rows = []
    for name, attack, ladder, target in ATTACKS:
        if only and not any(part in name for part in only):
            continue
        load, cpu0, wall0 = os.getloadavg()[0], time.process_time(), time.perf_counter()
        results: dict[int, list[Trial]] = {}
        guilty_count = 0
        for n in sorted({max(10, int(r * scale)) for r in ladder}):
            rng = np.random.default_rng([zlib.crc32(name.encode()), n])  # reproducible
            results[n] = []
            for t in range(trials):
                frame, guilty = attack(world, n, rng)
                guilty_count = len(guilty)
                results[n].append(judge(world, frame, guilty, seed=t))
        rungs = sorted(results)  # rows needed: every rung from here up named right each time
        needed = next((n for i, n in enumerate(rungs)
                       if all(t.named_right for m in rungs[i:] for t in results[m])), None)
        target_n = int(target * scale)
        at_target = results[max(n for n in results if n <= target_n)]
        row = {
            "attack": name, "target_rows": target_n, "rows_needed": needed,
            "success_at_target": float(np.mean([t.named_right for t in at_target])),
            "guilty_named_at_target": float(np.mean([t.guilty_named for t in at_target])),
            "guilty": guilty_count,
            "success_by_rows": {n: float(np.mean([t.named_right for t in r]))
                                for n, r in results.items()},
            "innocents_named": int(sum(t.innocents_named for r in results.values() for t in r)),
            "smallest_innocent_log10_bound": float(min(
                t.innocent_log10_bound for r in results.values() for t in r)),
            "largest_innocent_tardos": float(max(
                t.innocent_max_tardos for r in results.values() for t in r)),
            "median_guilty_log10_bound": float(np.median([t.guilty_log10_bound
                                                          for t in at_target])),
            "median_rows_linked_at_target": float(np.median([t.rows_linked
                                                             for t in at_target])),
            "median_seconds": float(np.median([t.seconds for r in results.values()
                                               for t in r])),
            "cpu_s": time.process_time() - cpu0,  # the whole row: every rung and trial
            "wall_s": time.perf_counter() - wall0,
            "load_before": load,  # the 1-minute load average before the row
            "null": [b for r in results.values() for t in r
                     for b in t.innocent_hypothesis_bounds],
            "null_scores": [b for r in results.values() for t in r
                            for b in t.innocent_score_bounds],
        }
        say(f"{name}: rows needed {needed}, success at target {row['success_at_target']:.0%} "
            f"(of {row['guilty']} guilty, {row['guilty_named_at_target']:.1f} named), "
            f"innocents named {row['innocents_named']}, smallest innocent bound "
            f"1e{row['smallest_innocent_log10_bound']:.1f}, median guilty bound "
            f"1e{row['median_guilty_log10_bound']:.1f} ({row['wall_s']:.0f} s, "
            f"{row['cpu_s']:.0f} s of CPU, load {load:.1f} before)")
        rows.append(row)
    return rows


def round_trips(world: World, root: Path, trials: int, n: int) -> dict[str, Any]:
    """CSV / Parquet / Excel files with renamed, reordered columns and changed dtypes."""
    out: dict[str, Any] = {}
    rng = np.random.default_rng(7)
    for fmt in ("csv", "parquet", "xlsx"):
        ok = 0
        for t in range(trials):
            frame, guilty = id_dropped(world, n, rng)
            names = {c: f"Column {i}" for i, c in enumerate(rng.permutation(frame.columns))}
            frame = frame.rename(names).select(sorted(names.values()))
            frame = frame.with_columns(pl.col(c).cast(pl.Float32) for c in frame.columns[:3])
            path = root / f"suspect-{t}.{fmt}"
            if fmt == "csv":
                frame.write_csv(path)
            elif fmt == "parquet":
                frame.write_parquet(path)
            else:
                _write_xlsx(frame, path)
            read = suspect_tables.read_suspect(path)
            ok += judge(world, read, guilty, seed=t).named_right
        out[fmt] = ok / trials
        say(f"round trip {fmt}: {ok}/{trials} named right")
    return out


def _write_xlsx(frame: pl.DataFrame, path: Path) -> None:
    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet("leak")
    sheet.append(frame.columns)
    for row in frame.iter_rows():
        sheet.append([None if v is None or (isinstance(v, float) and math.isnan(v)) else v
                      for v in row])
    book.save(path)


# -- utility and speed ----------------------------------------------------------------------

def utility(world: World) -> dict[str, float]:
    copy = world.copies[world.lone].filter(pl.col("_eid").is_not_null())
    aligned = world.master.join(copy.rename({c: f"{c}__x" for c in world.columns}),
                                left_on=EID, right_on="_eid", how="inner")
    numeric = list(world.numeric)
    before = aligned.select(numeric).cast(pl.Float64).to_numpy()
    after = aligned.select([f"{c}__x" for c in numeric]).cast(pl.Float64).to_numpy()
    before[np.isnan(after)] = np.nan  # the same cells on both sides (see the regressions)
    sd = np.nanstd(before, axis=0)
    dmean = np.abs(np.nanmean(after, axis=0) - np.nanmean(before, axis=0)) / sd
    complete = ~np.isnan(before).any(axis=1) & ~np.isnan(after).any(axis=1)
    dcorr = np.abs(np.corrcoef(after[complete].T) - np.corrcoef(before[complete].T))
    position = {c: i for i, c in enumerate(world.columns)}
    full_b = aligned.select(world.columns).cast(pl.Float64).to_numpy()
    full_a = aligned.select([f"{c}__x" for c in world.columns]).cast(pl.Float64).to_numpy()
    shifts = []
    for outcome, predictors in REGRESSIONS.items():
        pick = [position[outcome], *[position[p] for p in predictors]]
        # the same rows before and after: a quasi-identifier the risk gate blanked (a row
        # left in a class under k) is the gate's doing, reported by its summary, not a mark's
        rows = ~np.isnan(full_b[:, pick]).any(axis=1) & ~np.isnan(full_a[:, pick]).any(axis=1)
        b_beta, b_se = _ols(full_b[rows][:, pick])
        a_beta, _ = _ols(full_a[rows][:, pick])
        shifts.append(float(np.max(np.abs(a_beta - b_beta) / b_se)))
    density = {c.column: c.density for c in world.carriers}
    kinds = {"every cell marked": [density.get(c) == 1.0 for c in numeric],
             "sparse marks": [0 < density.get(c, 0.0) < 1.0 for c in numeric],
             "unmarked": [c not in density for c in numeric]}
    by_kind = {}
    for kind, members in kinds.items():
        pick = np.array(members)
        if pick.any():
            by_kind[kind] = {"columns": int(pick.sum()),
                             "max_abs_dmean_sd": float(dmean[pick].max()),
                             "max_abs_dcorr": float(dcorr[pick].max())}
    by_kind.update(_date_utility(world))
    everyone = world.master.select(numeric).cast(pl.Float64).to_numpy()
    subset = np.abs(np.nanmean(before, axis=0) - np.nanmean(everyone, axis=0)) / sd
    return {"max_abs_dmean_sd": float(dmean.max()),
            "max_abs_dmean_sd_withheld": float(subset.max()),
            "by_kind": by_kind,
            "max_abs_dcorr": float(dcorr.max()),
            "max_coef_shift_se": float(max(shifts)),
            "regressions": len(REGRESSIONS)}


def _date_utility(world: World) -> dict[str, dict[str, float]]:
    """The wide extract's marked dates (as days): mean and SD moved, in SDs, on the same rows,
    and the largest change of their correlation with the wide extract's other numbers."""
    dated = [c.column for c in world.carriers if c.kind == carriers.DATE]
    if not dated or not world.wide:
        return {}
    copy = world.copies[world.wide].filter(pl.col("_eid").is_not_null())
    numbers = [c for c in world.wide_columns if c in world.numeric]
    aligned = world.master.join(copy.rename({c: f"{c}__x" for c in world.wide_columns}),
                                left_on=EID, right_on="_eid", how="inner")
    dmean, dsd, dcorr, dmonth, dmonth_sd, moved_month = [], [], [], [], [], []
    for column in dated:
        both = aligned.select(pl.col(column).cast(pl.Int32).cast(pl.Float64).alias("b"),
                              pl.col(f"{column}__x").cast(pl.String).str.to_date(strict=False)
                              .cast(pl.Int32).cast(pl.Float64).alias("a"),
                              *[pl.col(n).cast(pl.Float64) for n in numbers]).drop_nulls()
        before, after = both["b"].to_numpy(), both["a"].to_numpy()
        sd = float(np.std(before))
        dmean.append(abs(float(after.mean() - before.mean())) / sd)
        dsd.append(abs(float(np.std(after)) - sd) / sd)
        # month counts (the edges' marks cross a month in both directions)
        months_before = before.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
        months_after = after.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
        low = int(min(months_before.min(), months_after.min()))
        counts_before = np.bincount(months_before - low)
        counts_after = np.bincount(months_after - low, minlength=len(counts_before))
        counts_before = np.pad(counts_before, (0, len(counts_after) - len(counts_before)))
        busy = counts_before >= 100
        change = np.abs(counts_after - counts_before)[busy]
        dmonth.append(float(np.max(change / counts_before[busy])))
        dmonth_sd.append(float(np.max(change / np.sqrt(counts_before[busy]))))
        moved_month.append(float(np.mean(months_before != months_after)))
        rest = both.select(numbers).to_numpy()
        dcorr += [abs(float(np.corrcoef(after, rest[:, i])[0, 1]
                            - np.corrcoef(before, rest[:, i])[0, 1])) for i in range(len(numbers))]
    return {"dates (±1 day, sparse)": {"columns": len(dated),
                                       "max_abs_dmean_sd": max(dmean),
                                       "max_abs_dsd_share": max(dsd),
                                       "max_abs_dcorr": max(dcorr, default=0.0),
                                       "max_month_count_change_share": max(dmonth),
                                       "max_month_count_change_poisson_sd": max(dmonth_sd),
                                       "rows_changing_month_share": max(moved_month)}}


def _ols(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    data = data[~np.isnan(data).any(axis=1)]
    y, x = data[:, 0], np.column_stack([np.ones(len(data)), data[:, 1:]])
    beta, *_ = np.linalg.lstsq(x, y, rcond=None)
    resid = y - x @ beta
    sigma2 = resid @ resid / (len(y) - x.shape[1])
    se = np.sqrt(np.diag(np.linalg.inv(x.T @ x)) * sigma2)
    return beta, se


def speed(world: World, root: Path) -> dict[str, float]:
    ctx = world.platform.access
    out = {"create_extract_s": world.timings["create_extract_s"]}
    frame = world.master
    t0 = time.perf_counter()
    carriers.fingerprint(frame, world.carriers, codes.bias_key(ctx.key),
                         codes.recipient_key(ctx.key, "ext_speed"))
    out["embed_s"] = time.perf_counter() - t0
    out["embed_rows"] = frame.height
    out["embed_columns"] = len(world.columns)
    for n in (frame.height, 5000):
        rows = _no_id(world.copies[world.lone])
        rows = rows[np.random.default_rng(n).permutation(rows.height)[:n]]
        rows.write_csv(root / f"speed-{n}.csv")
    out |= time_attribution(world.platform, root, world.lone, (frame.height, 5000))
    return out


def time_attribution(platform: Platform, root: Path, lone: str,
                     sizes: tuple[int, ...]) -> dict[str, float]:
    """Attribute each ``root/speed-{n}.csv`` (the lone leaker's copy, ID dropped,
    shuffled), timed: wall, CPU and the 1-minute load before."""
    out: dict[str, float] = {}
    for n in sizes:
        path = root / f"speed-{n}.csv"
        out[f"attribute_{n}_load"] = os.getloadavg()[0]  # the 1-minute load before the run
        t0, c0 = time.perf_counter(), time.process_time()
        report = service.attribute(platform.access, None, path, store=platform.store)
        out[f"attribute_{n}_s"] = time.perf_counter() - t0
        out[f"attribute_{n}_cpu_s"] = time.process_time() - c0
        out[f"attribute_{n}_named_right"] = float(
            [a.extract_id for a in report.accused] == [lone])
        say(f"attribute {n:,} rows vs {report.recipients:,} recipients: "
            f"{out[f'attribute_{n}_s']:.1f} s ({out[f'attribute_{n}_cpu_s']:.1f} s of CPU, "
            f"load {out[f'attribute_{n}_load']:.1f} before), {report.summary()}")
    return out


KEPT = "kept-world.json"  # --world: what a kept world's later runs need


def kept_speed(root: Path) -> dict[str, float]:
    """--speed-only --world on a world kept by an earlier run: the attribution timings
    only (the embedding is timed when the world is built)."""
    kept = json.loads((root / KEPT).read_text())
    say(f"reusing the world kept in {root} (built {kept['built']}, seed {kept['seed']})")
    with Platform.open(root / "data", root / "master.key",
                       settings=Settings(password_profile="CHEAPEST")) as platform:
        return time_attribution(platform, root, kept["lone"], tuple(kept["sizes"]))


ALPHAS = (0.1, 0.01, 0.001, 1e-4)


def null_check(null: list[float], scores: list[float]) -> dict[str, Any]:
    """Innocent recipients' bounds: each kind's own must have P(bound ≤ α) ≤ α; the
    recipient's (the smallest of its kinds) P ≤ 4α, which is what the union pays for."""
    values, each = np.array(null), np.array(scores)
    return {"innocent_scores": len(values),
            **{f"share_bound_le_{a:g}": float(np.mean(values <= a)) for a in ALPHAS},
            "score_bounds": len(each),
            **{f"score_share_le_{a:g}": float(np.mean(each <= a)) for a in ALPHAS}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--trials", type=int)
    parser.add_argument("--only", action="append", metavar="NAME")
    parser.add_argument("--speed-only", action="store_true",
                        help="build the registry, then only the embedding and attribution "
                             "timings (a few minutes; for re-measuring on a quiet machine)")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--world", type=Path, metavar="DIR",
                        help="with --speed-only: build the world into DIR and keep it; a "
                             "later run with the same DIR reuses it (attribution timings "
                             "only, no rebuild)")
    args = parser.parse_args()
    if args.world is not None and not args.speed_only:
        parser.error("--world goes with --speed-only")
    if args.world is not None and (args.world / KEPT).is_file():
        os.environ.pop("STRONGROOM_MASTER_KEY", None)
        say(json.dumps(kept_speed(args.world)))
        return
    n, registered, trials, scale = ((50_000, 100, 3, 1.0) if args.quick
                                    else (500_000, 1000, 10, 1.0))
    trials = args.trials or trials
    run = {"command": " ".join(["python", *sys.argv]), "machine": _machine(),
           "started": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
           "load_before": os.getloadavg()[0]}
    cpu0, wall0 = time.process_time(), time.perf_counter()
    keep = args.world is not None
    if keep:
        args.world.mkdir(parents=True, exist_ok=True)
    root = args.world if keep else Path(tempfile.mkdtemp(prefix="strongroom-extracts-"))
    os.environ.pop("STRONGROOM_MASTER_KEY", None)
    try:
        world = build(root, n, registered, args.seed)
        if args.speed_only:
            with world.platform:
                fast = speed(world, root)
            if keep:
                (root / KEPT).write_text(json.dumps({
                    "lone": world.lone, "sizes": [world.master.height, 5000],
                    "seed": args.seed, "built": run["started"]}))
            say(json.dumps(fast))
            return
        with world.platform:
            table = attack_table(world, trials, scale, args.only)
            trips = use = fast = None
            if not args.only:
                trips = round_trips(world, root, max(2, trials // 2), 500)
                use = utility(world)
                fast = speed(world, root)
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
    null = null_check([b for row in table for b in row.pop("null")],
                      [b for row in table for b in row.pop("null_scores")])
    run |= {"load_after": os.getloadavg()[0], "cpu_s": time.process_time() - cpu0,
            "wall_s": time.perf_counter() - wall0}
    result = {"run": run, "participants": n, "recipients": registered, "trials": trials,
              "attacks": table, "round_trips": trips, "utility": use, "speed": fast,
              "null": null, "cutoff": codes.CUTOFF, "threshold": accuse.THRESHOLD,
              "max_positions": accuse.MAX_POSITIONS}
    print_table(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


def _machine() -> str:
    """The CPU model and how many cores this process may use."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model or 'unknown CPU'}, {len(os.sched_getaffinity(0))} cores"


def print_table(r: dict[str, Any]) -> None:
    say("")
    say(f"Traceable extracts: {r['participants']:,} participants, {r['recipients']:,} "
        f"registered recipients, {r['trials']} trials per attack and row count")
    run = r.get("run", {})
    if run:
        say(f"Command: {run['command']}; machine: {run['machine']}; started {run['started']} "
            f"at load {run['load_before']:.1f}, ended at load {run['load_after']:.1f}; "
            f"{run['wall_s']:.0f} s wall, {run['cpu_s']:.0f} s of CPU (this process)")
    say("")
    say("| attack on the leaked copy | target rows | rows needed | success at target | "
        "guilty named at target (of) | median guilty bound at target | innocents named | "
        "smallest innocent bound | largest innocent Tardos score | CPU s (load before) |")
    say("|---|---|---|---|---|---|---|---|---|---|")
    for a in r["attacks"]:
        needed = f"{a['rows_needed']:,}" if a["rows_needed"] else "not reached"
        say(f"| {a['attack']} | {a['target_rows']:,} | {needed} | "
            f"{a['success_at_target']:.0%} | "
            f"{a.get('guilty_named_at_target', 0):.1f} ({a.get('guilty', 1)}) | "
            f"1e{a['median_guilty_log10_bound']:.0f} | "
            f"{a['innocents_named']} | "
            f"{math.pow(10, a['smallest_innocent_log10_bound']):.2g} | "
            f"{a['largest_innocent_tardos']:.1f} | "
            f"{a.get('cpu_s', 0.0):.0f} ({a.get('load_before', 0.0):.1f}) |")
    if r["round_trips"] is not None:
        trips = ", ".join(f"{k} {v:.0%}" for k, v in r["round_trips"].items())
        say(f"| CSV / Parquet / Excel round trips, renamed columns, dtype changes | 500 | — | "
            f"{trips} | | | | | | |")
    say("")
    say(f"A recipient is named when its bound is ≤ {r['threshold']:g} (the median guilty "
        f"bound shows the margin). Half foreign rows: n of the leaker's rows and n rows of "
        f"another cohort, 2n rows read.")
    nl = r["null"]
    if r["utility"] is not None:
        _print_utility_and_speed(r)
    say(f"Null check over {nl['innocent_scores']:,} innocent recipient-trials: share with "
        f"per-recipient bound ≤ α: " + ", ".join(
            f"α={k.removeprefix('share_bound_le_')}: {v:.4f}" for k, v in nl.items()
            if k.startswith("share")) + f" (each must be ≤ {len(accuse.ALL_KINDS)}α); over their "
        f"{nl['score_bounds']:,} scores, share with the score's own bound ≤ α: " + ", ".join(
            f"α={k.removeprefix('score_share_le_')}: {v:.4f}" for k, v in nl.items()
            if k.startswith("score_share")) + " (each must be ≤ α)")


def _print_utility_and_speed(r: dict[str, Any]) -> None:
    u, s = r["utility"], r["speed"]
    say("")
    say(f"Utility: max |Δmean| {u['max_abs_dmean_sd']:.2e} SD (target ≤ 1e-3); max |Δcorr| "
        f"{u['max_abs_dcorr']:.2e} (≤ 1e-3); {u['regressions']} reference regressions, "
        f"largest coefficient shift {u['max_coef_shift_se']:.3f} SE (≤ 0.05); the keyed 2% "
        f"withheld moves a mean by at most {u['max_abs_dmean_sd_withheld']:.2e} SD (a random "
        f"subsample: ~√(0.02/n) SD)")
    for kind, v in u["by_kind"].items():
        say(f"  {kind} ({v['columns']} columns): max |Δmean| {v['max_abs_dmean_sd']:.2e} SD, "
            f"max |Δcorr| with any column {v['max_abs_dcorr']:.2e}"
            + (f", |ΔSD| {v['max_abs_dsd_share']:.2e} of itself" if "max_abs_dsd_share" in v
               else "")
            + (f"; {v['rows_changing_month_share']:.1%} of dates change month, a month's count "
               f"by at most {v['max_month_count_change_share']:.1%} "
               f"({v['max_month_count_change_poisson_sd']:.2f} Poisson SD)"
               if "rows_changing_month_share" in v else ""))
    full = s[f"attribute_{int(s['embed_rows'])}_s"]
    cpu = s.get(f"attribute_{int(s['embed_rows'])}_cpu_s", 0.0)
    say(f"Speed: embedding {s['embed_rows']:,} × {s['embed_columns']} in {s['embed_s']:.2f} s "
        f"(≤ 10 s); a whole extract (load, pseudonyms, marks, decoys, CSV) "
        f"{s['create_extract_s']:.1f} s; attribute vs {r['recipients']:,} recipients: "
        f"{s['embed_rows']:,} rows {full:.1f} s "
        f"({cpu:.1f} s of CPU; ≤ 5 s), "
        f"5,000 rows {s['attribute_5000_s']:.1f} s (≤ 2 s)")


if __name__ == "__main__":
    sys.exit(main())
