"""The pipeline: people, lifestyle, measures, health, registries, hospital records, tables."""

from __future__ import annotations

import numpy as np
import polars as pl

from strongroom.cohort import model
from strongroom.cohort.dictionary import Dictionary, shipped_dictionary
from strongroom.cohort.synth import (
    assemble,
    context,
    demographics,
    events,
    health,
    lifestyle,
    measures,
    registry,
    selfreport,
)
from strongroom.cohort.synth.draws import (
    DAYS_PER_YEAR,
    BoolArray,
    FloatArray,
    IntArray,
    segment_starts,
    streams,
)
from strongroom.cohort.synth.targets import participant_share
from strongroom.progress import Progress

# Share of the progress bar per stage (sums to 100): each stage's share of run time at 500,000.
STAGES: dict[str, int] = {
    "people": 12,
    "measures": 13,
    "health": 22,
    "registries": 6,
    "hospital records": 32,
    "tables": 15,
}


def synthesise(
    n: int,
    seed: int,
    dictionary: Dictionary | None = None,
    progress: Progress | None = None,
    *,
    hospital: bool = True,
) -> model.Cohort:
    """A synthetic UK Biobank-shaped cohort of ``n`` participants, the same for the same seed.

    ``progress(stage, advance)`` is called as work proceeds; the advances sum to 100.
    ``hospital`` False leaves the hospital records (diagnoses, operations) empty and skips
    their generation (about 70 % of the time at 3,000 participants): every other table is the
    same, for each stage draws from its own stream.
    """
    if n < 1:
        raise ValueError(f"a cohort needs at least one participant, not {n}")
    d = dictionary if dictionary is not None else shipped_dictionary()
    tick = _ticker(progress)
    rng = streams(seed)

    people = demographics.generate(rng["demographics"], n, d)
    life = lifestyle.generate(rng["lifestyle"], people, d)
    tick("people", STAGES["people"])

    body = measures.body(rng["measures"], people, life, d)
    latent = measures.latent(rng["measures"], people, life, body)
    state = health.generate(rng["health"], people, life, body, latent)
    measured = measures.measured(rng["measures"], people, life, body, latent, state, d)
    tick("measures", STAGES["measures"])

    answers = selfreport.generate(rng["selfreport"], people, life, body, state, d)
    ctx = context.build(people, life, body, latent, measured, state)
    icd, opcs = context.CodeBook(), context.CodeBook()
    drawn = events.conditions(rng["conditions"], ctx, icd)
    tick("health", STAGES["health"])

    cancer_share = participant_share(d, 40005, registry.CANCER_PEOPLE)
    cancer = registry.cancers(rng["cancers"], ctx, icd, cancer_share)
    has = {name: _flag(n, draw.person) for name, draw in drawn.items()}
    death_share = participant_share(d, 40000, registry.DEATHS)
    death = registry.deaths(rng["deaths"], ctx, cancer, has, icd, death_share)
    cancer = _before_death(cancer, death.day)
    tick("registries", STAGES["registries"])

    hosp = (events.hospital(rng["admissions"], ctx, drawn, cancer, death, icd, opcs, d)
            if hospital else events.Hospital(_NO_EVENTS, _NO_EVENTS))
    tick("hospital records", STAGES["hospital records"])

    # Seven-digit IDs in random order of issue; sorted, as UK Biobank files are.
    eid = 1_000_000 + np.sort(rng["ids"].choice(9_000_000, size=n, replace=False))
    values = {
        **people.values, **life.values, **body.values, **measured.values, **state.values,
        **answers,
    }  # fmt: skip
    texts = {36: (people.device_ids, people.device)}
    participants = assemble.participants(rng["missing"], eid, people.female, values, texts, d)
    tick("tables", STAGES["tables"] // 2)
    tables = _event_tables(eid, people.birth, hosp, death, cancer, icd, opcs, d)
    tick("tables", STAGES["tables"] - STAGES["tables"] // 2)
    return model.Cohort(participants, tables)


_NO_EVENTS = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64))


def _ticker(progress: Progress | None) -> Progress:
    def tick(stage: str, advance: int) -> None:
        if progress is not None and advance:
            progress(stage, advance)

    return tick


def _flag(n: int, person: IntArray) -> BoolArray:
    out = np.zeros(n, dtype=np.bool_)
    out[person] = True
    return out


def _before_death(cancer: registry.Cancers, day: IntArray) -> registry.Cancers:
    keep = cancer.date <= day[cancer.person]
    return registry.Cancers(
        cancer.person[keep], cancer.site[keep], cancer.date[keep], cancer.code[keep],
        cancer.histology[keep], cancer.behaviour[keep], cancer.fatal[keep],
    )  # fmt: skip


def _event_tables(
    eid: IntArray,
    birth: IntArray,
    hosp: events.Hospital,
    death: registry.Deaths,
    cancer: registry.Cancers,
    icd: context.CodeBook,
    opcs: context.CodeBook,
    d: Dictionary,
) -> dict[str, pl.DataFrame]:
    icd_codes = pl.Series(icd.codes, dtype=pl.String)
    opcs_codes = pl.Series(opcs.codes, dtype=pl.String)
    built: dict[str, dict[str, pl.Series]] = {}
    for name, (person, code, date), book, field_id in (
        ("diagnoses", hosp.diagnoses, icd_codes, 41270),
        ("operations", hosp.operations, opcs_codes, 41272),
    ):
        index = segment_starts(person)  # rows come sorted by person, date, code
        slots = d.field(field_id).arrays if field_id in d else np.iinfo(np.int32).max
        keep = index < slots
        built[name] = {
            model.EID: pl.Series(eid[person[keep]]),
            "array_index": pl.Series(index[keep]),
            "code": book.gather(code[keep]),
            "date": _dates(date[keep]),
        }
    built["deaths"] = {
        model.EID: pl.Series(eid[death.person]),
        "instance": pl.Series(np.zeros(death.person.shape[0], dtype=np.int64)),
        "date": _dates(death.date),
        "cause": icd_codes.gather(death.cause),
        "age": pl.Series(_age(death.date, birth[death.person])),
    }
    instance = segment_starts(cancer.person)  # records are sorted by person, then date
    cancer_code = icd_codes.gather(np.where(cancer.code >= 0, cancer.code, 0))
    no_code = pl.Series([None] * cancer_code.len(), dtype=pl.String)
    built["cancers"] = {
        model.EID: pl.Series(eid[cancer.person]),
        "instance": pl.Series(instance),
        "date": _dates(cancer.date),
        "code": cancer_code.zip_with(pl.Series(cancer.code >= 0), no_code),
        "age": pl.Series(_age(cancer.date, birth[cancer.person])),
        "histology": pl.Series(cancer.histology).fill_nan(None),
        "behaviour": pl.Series(cancer.behaviour).fill_nan(None),
    }
    tables: dict[str, pl.DataFrame] = {}
    for table in model.EVENT_TABLES:
        if table.name not in built or not any(fid in d for fid in table.field_ids):
            continue
        schema = model.event_schema(table, d)
        columns = built[table.name]
        height = columns[model.EID].len()
        tables[table.name] = pl.DataFrame(
            [
                (columns[c] if c in columns else pl.Series([None] * height)).cast(dtype).alias(c)
                for c, dtype in schema.items()
            ]
        )
    return tables


def _dates(day: IntArray) -> pl.Series:
    return pl.Series(day.astype(np.int32)).cast(pl.Date)


def _age(day: IntArray, birth: IntArray) -> FloatArray:
    return np.round((day - birth) / DAYS_PER_YEAR, 1)
