"""Hospital records: conditions with onset dates, admissions, diagnoses and operations.

The model, in three layers:

* conditions (``codes.CONDITIONS``) — each person develops some, with a risk set by their age,
  sex, lifestyle, measures and earlier conditions, and an onset date; those present at
  recruitment (hypertension, diabetes, heart disease …) are the same people who reported them;
* admissions — acute admissions, over-dispersed (gamma-Poisson) and rising with age, plus the
  admissions that some onsets, cancers and terminal illnesses bring with them; hospital coverage
  starts in 1997 in England (1996 Scotland, 1998 Wales) and ends at death or the censor date;
* codes — each admission carries its main diagnosis and companions (``codes.THEMES``); a
  chronic condition is coded at the first admission after onset, with a per-admission chance, so
  comorbidity clusters (hypertension, diabetes, lipids, heart disease) share dates as in HES.

Each code keeps its first date only, as in UK Biobank fields 41270/41280 and 41272/41282.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from strongroom.cohort.dictionary import Dictionary
from strongroom.cohort.synth import codes
from strongroom.cohort.synth.context import CodeBook, Context
from strongroom.cohort.synth.draws import (
    DAYS_PER_YEAR,
    FloatArray,
    IntArray,
    age_weighted_dates,
    choice_by_group,
    day_of,
    gamma_frailty,
    intercept_for,
    sigmoid,
)
from strongroom.cohort.synth.registry import Cancers, Deaths
from strongroom.cohort.synth.targets import participant_share

ADMISSION_SLOPE = 0.05  # acute admissions rise ~5% per year of age
ADMISSION_SHAPE = 0.45  # gamma shape of person-level admission frailty (over-dispersion)
TERMINAL_ADMISSION = 0.85  # deaths preceded by an admission that codes the cause
DIAGNOSED_PEOPLE = 410_320 / 502_413  # Showcase field 41270 participants
_KEY_SHIFT = 17  # bits for a day (offset so that 1790-2149 fit) in packed sort keys
_DATE_OFFSET = 1 << 16
_CODE_BITS = 16  # bits for a code id in packed sort keys (person id takes the top 30)


@dataclass
class ConditionDraw:
    person: IntArray
    onset: IntArray
    code: IntArray  # CodeBook id


@dataclass
class Rows:
    """Event rows as parallel arrays, appended to piecewise and concatenated once."""

    person: list[IntArray] = field(default_factory=list)
    code: list[IntArray] = field(default_factory=list)
    date: list[IntArray] = field(default_factory=list)

    def add(self, person: IntArray, code: IntArray | int, date: IntArray) -> None:
        self.person.append(person)
        self.code.append(np.broadcast_to(np.asarray(code, dtype=np.int64), person.shape))
        self.date.append(date)

    def arrays(self) -> tuple[IntArray, IntArray, IntArray]:
        if not self.person:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, empty
        return (
            np.concatenate(self.person),
            np.concatenate(self.code),
            np.concatenate(self.date),
        )


def conditions(rng: np.random.Generator, ctx: Context, book: CodeBook) -> dict[str, ConditionDraw]:
    out: dict[str, ConditionDraw] = {}
    n = ctx.n
    adult = ctx.birth + np.int64(18 * 365)
    for cond in codes.CONDITIONS:
        eligible = np.ones(n, dtype=np.bool_)
        if cond.sex:
            eligible = ctx.female if cond.sex == "F" else ~ctx.female
        base = np.zeros(n, dtype=np.bool_)
        onset = np.full(n, -1, dtype=np.int64)
        if cond.baseline:
            base = ctx.health.state(cond.baseline) & eligible
            onset = np.maximum(ctx.health.onset(cond.baseline), ctx.birth + 365)
        base_share = float(base[eligible].mean()) if eligible.any() else 0.0
        rows = np.flatnonzero(eligible & ~base)
        wanted = (cond.share - base_share) / max(1 - base_share, 1e-9)
        if wanted > 0 and rows.shape[0]:
            score = ctx.score(dict(cond.risk), rows)
            p = sigmoid(intercept_for(score, min(wanted, 0.999)) + score)
            new = rows[rng.random(rows.shape[0]) < p]
            if cond.lifelong:
                onset[new] = ctx.birth[new]
            else:
                back = 0 if cond.baseline else 12  # linked states start after recruitment
                start = np.maximum(ctx.recruited[new] - back * 365, adult[new])
                onset[new] = age_weighted_dates(rng, start, ctx.end[new], cond.slope)
            base[new] = True
        person = np.flatnonzero(base)
        names = [c for c, _ in cond.icd10]
        weights = np.array([w for _, w in cond.icd10])
        chosen = rng.choice(len(names), size=person.shape[0], p=weights / weights.sum())
        out[cond.name] = ConditionDraw(person, onset[person], book.ids(names)[chosen])
        ctx.factors[cond.name] = base.astype(np.float64)
    return out


@dataclass
class Hospital:
    diagnoses: tuple[IntArray, IntArray, IntArray]  # person, code id, date (first per code)
    operations: tuple[IntArray, IntArray, IntArray]


def hospital(
    rng: np.random.Generator,
    ctx: Context,
    drawn: dict[str, ConditionDraw],
    cancer: Cancers,
    death: Deaths,
    icd: CodeBook,
    opcs: CodeBook,
    dictionary: Dictionary,
) -> Hospital:
    n = ctx.n
    start_by_country = np.array([day_of(codes.HES_START[c]) for c in (0, 1, 2)])
    start = np.maximum(start_by_country[ctx.country], ctx.birth + np.int64(16 * 365))
    end = np.minimum(ctx.end, death.day)
    diag, ops = Rows(), Rows()
    adm_person: list[IntArray] = []
    adm_date: list[IntArray] = []

    # Admissions that come with an onset: heart attacks, cataract surgery, fractures …
    for cond in codes.CONDITIONS:
        d = drawn[cond.name]
        inside = (d.onset >= start[d.person]) & (d.onset <= end[d.person])
        if not cond.admits:
            continue
        person, date = d.person[inside], d.onset[inside]
        adm_person.append(person)
        adm_date.append(date)
        diag.add(person, d.code[inside], date)
        _also(rng, diag, icd, person, date, cond.also)
        _bundles(rng, ops, opcs, person, date, cond.ops, cond.lateral)

    # Cancers diagnosed while hospital records run.
    site_default = np.array([icd.id(s.icd10[0][0]) for s in codes.CANCER_SITES])
    in_hes = np.array([s.in_hes for s in codes.CANCER_SITES])[cancer.site]
    seen = (cancer.date >= start[cancer.person]) & (cancer.date <= end[cancer.person])
    seen &= rng.random(cancer.person.shape[0]) < in_hes
    rows = np.flatnonzero(seen)
    person = cancer.person[rows]
    date = np.minimum(cancer.date[rows] + rng.integers(0, 21, rows.shape[0]), end[person])
    code = np.where(cancer.code[rows] >= 0, cancer.code[rows], site_default[cancer.site[rows]])
    adm_person.append(person)
    adm_date.append(date)
    diag.add(person, code, date)
    for s, site in enumerate(codes.CANCER_SITES):
        of_site = cancer.site[rows] == s
        _bundles(rng, ops, opcs, person[of_site], date[of_site], site.ops, False)
    chemo = rng.random(rows.shape[0]) < 0.08
    diag.add(person[chemo], icd.id("Z511"), date[chemo])

    # The admission before death, coding its cause (most UK deaths follow one).
    last = rng.random(death.person.shape[0]) < TERMINAL_ADMISSION
    t_person = death.person[last]
    t_date = death.date[last] - np.floor(rng.exponential(10.0, t_person.shape[0])).astype(np.int64)
    ok = t_date >= start[t_person]
    t_person, t_date = t_person[ok], t_date[ok]
    adm_person.append(t_person)
    adm_date.append(t_date)
    diag.add(t_person, death.cause[last][ok], t_date)
    _also(rng, diag, icd, t_person, t_date, (("Z515", 0.35), ("N179", 0.1), ("J189", 0.12)))
    spread = death.from_cancer[last][ok]
    _also(
        rng,
        diag,
        icd,
        t_person[spread],
        t_date[spread],
        tuple((c, 0.5 * w) for c, w in codes.CANCER_SECONDARIES),
    )

    generated = np.zeros(n, dtype=np.bool_)
    for person in adm_person:
        generated[person] = True

    # Acute admissions: gamma-Poisson counts, rising with age, calibrated so that the share of
    # people with any hospital record matches the dictionary.
    f = ctx.factors
    log_rate = (
        0.3 * f["current"] + 0.1 * f["former"] + 0.15 * f["tdi"] + 0.25 * f["diabetes"]
        + 0.1 * f["bmi5"] + 0.3 * ctx.health.cvd + 0.3 * f["copd"] + 0.1 * f["female"]
    )  # fmt: skip
    age_start = (start - ctx.birth) / DAYS_PER_YEAR
    age_end = (end - ctx.birth) / DAYS_PER_YEAR
    g = ADMISSION_SLOPE
    exposure = np.where(
        end > start, (np.exp(g * (age_end - 60)) - np.exp(g * (age_start - 60))) / g, 0.0
    )
    weight = np.exp(log_rate) * exposure
    target = participant_share(dictionary, 41270, DIAGNOSED_PEOPLE)
    k = ADMISSION_SHAPE
    lo, hi = -10.0, 5.0
    for _ in range(50):
        mid = (lo + hi) / 2
        p_any = 1 - (1 + np.exp(mid) * weight / k) ** (-k)
        share = float(np.mean(np.where(generated, 1.0, p_any)))
        lo, hi = (mid, hi) if share < target else (lo, mid)
    mean = np.exp((lo + hi) / 2) * weight
    count = rng.poisson(mean * gamma_frailty(rng, n, k))
    a_person = np.repeat(np.arange(n, dtype=np.int64), count)
    a_date = age_weighted_dates(rng, start[a_person], end[a_person], g)
    adm_person.append(a_person)
    adm_date.append(a_date)
    _themes(rng, ctx, diag, ops, icd, opcs, a_person, a_date)

    # All admissions, sorted, for coding chronic conditions and background codes.
    person_all = np.concatenate(adm_person)
    date_all = np.concatenate(adm_date)
    order = np.lexsort((date_all, person_all))
    person_all, date_all = person_all[order], date_all[order]
    keys = (person_all << _KEY_SHIFT) + (date_all + _DATE_OFFSET)

    def first_after(person: IntArray, day: IntArray, chance: float) -> tuple[IntArray, IntArray]:
        """For each (person, day): the admission at or after ``day`` that codes it, where an
        admission codes it with probability ``chance``. Returns the rows that found one, and
        that admission's date."""
        if person_all.shape[0] == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        query = (person << _KEY_SHIFT) + (day + _DATE_OFFSET)
        at = np.searchsorted(keys, query) + rng.geometric(chance, size=person.shape[0]) - 1
        ok = at < person_all.shape[0]
        at = np.where(ok, at, 0)
        ok &= person_all[at] == person
        return np.flatnonzero(ok), date_all[at[ok]]

    for cond in codes.CONDITIONS:
        d = drawn[cond.name]
        live = np.flatnonzero(d.onset <= end[d.person])
        if cond.record > 0:
            found, date = first_after(d.person[live], d.onset[live], cond.record)
            diag.add(d.person[live][found], d.code[live][found], date)
        for later_code, chance in cond.later:
            pick = live[rng.random(live.shape[0]) < chance]
            found, date = first_after(d.person[pick], d.onset[pick] + 30, 0.5)
            diag.add(d.person[pick][found], icd.id(later_code), date)

    # Cancers leave a personal-history code at later admissions.
    history = np.array([icd.id(s.history) for s in codes.CANCER_SITES])
    pick = np.flatnonzero(rng.random(cancer.person.shape[0]) < 0.35)
    found, date = first_after(cancer.person[pick], cancer.date[pick] + 365, 0.6)
    diag.add(cancer.person[pick][found], history[cancer.site[pick][found]], date)

    _background(rng, ctx, diag, ops, icd, opcs, person_all, date_all, dictionary)
    return Hospital(_first_dates(diag), _first_dates(ops))


def _also(
    rng: np.random.Generator,
    rows: Rows,
    book: CodeBook,
    person: IntArray,
    date: IntArray,
    companions: codes.Weighted,
) -> None:
    for code, chance in companions:
        hit = rng.random(person.shape[0]) < chance
        rows.add(person[hit], book.id(code), date[hit])


def _bundles(
    rng: np.random.Generator,
    rows: Rows,
    book: CodeBook,
    person: IntArray,
    date: IntArray,
    bundles: tuple[codes.Bundle, ...],
    lateral: bool,
) -> None:
    """At most one procedure bundle per admission, chosen with the bundles' chances."""
    if not bundles or person.shape[0] == 0:
        return
    chances = np.array([p for _, p in bundles])
    cum = np.cumsum(chances)
    u = rng.random(person.shape[0])
    chosen = np.searchsorted(cum, u, side="right")  # == len(bundles): no procedure
    for b, (bundle, _) in enumerate(bundles):
        hit = chosen == b
        for code in bundle:
            rows.add(person[hit], book.id(code), date[hit])
    if lateral:
        done = chosen < len(bundles)
        side = rng.random(person.shape[0])
        for code, lo, hi in (("Z942", 0.0, 0.48), ("Z943", 0.48, 0.96), ("Z941", 0.96, 1.0)):
            hit = done & (side >= lo) & (side < hi)
            rows.add(person[hit], book.id(code), date[hit])


def _themes(
    rng: np.random.Generator,
    ctx: Context,
    diag: Rows,
    ops: Rows,
    icd: CodeBook,
    opcs: CodeBook,
    person: IntArray,
    date: IntArray,
) -> None:
    """Give each acute admission a kind (by age band and sex) and code it."""
    themes = codes.THEMES
    band_mid = np.arange(20, 100, 5) + 2.5
    table = np.empty((2 * band_mid.shape[0], len(themes)))
    for t, theme in enumerate(themes):
        w = theme.weight * np.exp(theme.age_slope * (band_mid - 60) / 10)
        table[: band_mid.shape[0], t] = 0.0 if theme.sex == "M" else w  # women
        table[band_mid.shape[0] :, t] = 0.0 if theme.sex == "F" else w  # men
    age = (date - ctx.birth[person]) / DAYS_PER_YEAR
    band = np.clip(((age - 20) // 5).astype(np.int64), 0, band_mid.shape[0] - 1)
    group = band + band_mid.shape[0] * (~ctx.female[person]).astype(np.int64)
    theme_of = choice_by_group(rng, group, table)
    for t, theme in enumerate(themes):
        rows = np.flatnonzero(theme_of == t)
        if rows.shape[0] == 0:
            continue
        p_person, p_date = person[rows], date[rows]
        names = [c for c, _ in theme.primary]
        w = np.array([x for _, x in theme.primary])
        primary = icd.ids(names)[rng.choice(len(names), size=rows.shape[0], p=w / w.sum())]
        diag.add(p_person, primary, p_date)
        _also(rng, diag, icd, p_person, p_date, theme.secondary)
        _bundles(rng, ops, opcs, p_person, p_date, theme.ops, False)


def _background(
    rng: np.random.Generator,
    ctx: Context,
    diag: Rows,
    ops: Rows,
    icd: CodeBook,
    opcs: CodeBook,
    person: IntArray,
    date: IntArray,
    dictionary: Dictionary,
) -> None:
    """Codes any admission may carry, and the long tail of rarely used codes."""
    a = person.shape[0]
    for rows, book, table in ((diag, icd, codes.BACKGROUND), (ops, opcs, codes.OPS_BACKGROUND)):
        chances = np.array([p for _, p in table])
        count = rng.poisson(chances.sum(), a)
        owner = np.repeat(np.arange(a), count)
        ids = book.ids([c for c, _ in table])
        picked = ids[rng.choice(ids.shape[0], owner.shape[0], p=chances / chances.sum())]
        rows.add(person[owner], picked, date[owner])
    for rows, book, field_id, rate in (
        (diag, icd, 41270, codes.TAIL_RATE),
        (ops, opcs, 41272, codes.OPS_TAIL_RATE),
    ):
        pools = _tail_pools(rng, dictionary, field_id, book)
        if pools is None:
            continue
        count = rng.poisson(rate, a)
        owner = np.repeat(np.arange(a), count)
        female = ctx.female[person[owner]]
        for sex_rows, (ids, weights) in ((~female, pools[0]), (female, pools[1])):
            idx = np.flatnonzero(sex_rows)
            picked = ids[rng.choice(ids.shape[0], idx.shape[0], p=weights)]
            rows.add(person[owner[idx]], picked, date[owner[idx]])


def _tail_pools(
    rng: np.random.Generator, dictionary: Dictionary, field_id: int, book: CodeBook
) -> tuple[tuple[IntArray, FloatArray], tuple[IntArray, FloatArray]] | None:
    """Rare codes of the field's coding with Zipf weights: (men's pool, women's pool)."""
    if field_id not in dictionary:
        return None
    coding = dictionary.coding_of(dictionary.field(field_id))
    if coding is None:
        return None
    pool = sorted(coding.selectable or coding.codes)
    barred: tuple[tuple[str, ...], tuple[str, ...]]
    if field_id == 41270:
        prefixes, barred = codes.TAIL_PREFIXES, (codes.FEMALE_ONLY, codes.MALE_ONLY)
    else:
        prefixes, barred = codes.OPS_TAIL_PREFIXES, (codes.OPS_FEMALE_ONLY, codes.OPS_MALE_ONLY)
    listed = set(book.codes)
    pool = [c for c in pool if c[:1] in prefixes and c not in listed]
    if not pool:
        return None
    weights = 1.0 / rng.permutation(np.arange(1, len(pool) + 1)) ** 0.6
    out = []
    for barred_codes in barred:
        allowed = np.array([not c.startswith(barred_codes) for c in pool])
        w = np.where(allowed, weights, 0.0)
        out.append(
            (
                book.ids([c for c, a in zip(pool, allowed, strict=True) if a]),
                w[allowed] / w[allowed].sum(),
            )
        )
    return out[0], out[1]


def _first_dates(rows: Rows) -> tuple[IntArray, IntArray, IntArray]:
    """One row per person and code, at the first date it was recorded; sorted by person,
    date and code. Sorting one packed int64 key is several times faster than a lexsort."""
    person, code, date = rows.arrays()
    if code.shape[0] and int(code.max()) >= 1 << _CODE_BITS:
        raise ValueError("too many distinct codes for the packed sort key")
    day = date + _DATE_OFFSET
    key = np.sort((person << (_CODE_BITS + _KEY_SHIFT)) | (code << _KEY_SHIFT) | day)
    first = np.ones(key.shape[0], dtype=np.bool_)
    first[1:] = (key[1:] >> _KEY_SHIFT) != (key[:-1] >> _KEY_SHIFT)
    key = key[first]
    person = key >> (_CODE_BITS + _KEY_SHIFT)
    code = (key >> _KEY_SHIFT) & ((1 << _CODE_BITS) - 1)
    day = key & ((1 << _KEY_SHIFT) - 1)
    chrono = np.sort((person << (_KEY_SHIFT + _CODE_BITS)) | (day << _CODE_BITS) | code)
    person = chrono >> (_KEY_SHIFT + _CODE_BITS)
    day = (chrono >> _CODE_BITS) & ((1 << _KEY_SHIFT) - 1)
    code = chrono & ((1 << _CODE_BITS) - 1)
    return person, code, day - _DATE_OFFSET
