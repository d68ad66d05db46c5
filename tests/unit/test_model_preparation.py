"""The models' preparation without its copies (issue 56) gives what it gave with them: the
winsorised values, the clip's bounds and the output check's vectors, value for value."""

from __future__ import annotations

import zlib

import numpy as np
import polars as pl
import pytest

from strongroom.enclave import winsor
from strongroom.enclave.analyses.frame import person_codes
from strongroom.enclave.analyses.run import vectors, winsorised


def _clip_rows_before(x: np.ndarray, ids: np.ndarray, k: int) -> np.ndarray:
    """winsor.clip_rows as it was (every present value and its pid copied)."""
    x = np.asarray(x, dtype=np.float64)
    present = np.isfinite(x)
    if k < 1 or not present.any():
        return x
    kept = ids[present]
    one_each = bool(np.all(kept[1:] > kept[:-1]))
    codes = person_codes(kept)
    people = int(codes.max()) + 1
    values = x[present]
    if people < 2 * k:
        sums = np.bincount(codes, weights=values, minlength=people)
        low = high = float(np.median(sums / np.bincount(codes, minlength=people)))
    else:
        if one_each:
            lowest = highest = values
        else:
            lowest = np.full(people, np.inf)
            highest = np.full(people, -np.inf)
            np.minimum.at(lowest, codes, values)
            np.maximum.at(highest, codes, values)
        r = winsor.rank(k, lowest, highest)
        low = float(np.partition(lowest, r - 1)[r - 1])
        high = float(np.partition(highest, people - r)[people - r])
    out = x.copy()
    out[present] = np.clip(values, low, high)
    return out


def _vectors_before(frame: pl.DataFrame, columns: list[str]) -> dict:
    """run.vectors as it was (always sorted)."""
    used = frame.select("pid", *dict.fromkeys(columns)).drop_nulls()
    numbers = []
    for name in dict.fromkeys(columns):
        column = used[name]
        if column.dtype.is_numeric() or column.dtype == pl.Boolean:
            numbers.append(column.cast(pl.Float64))
        else:
            text = column.cast(pl.String)
            codes = {v: float(zlib.crc32(v.encode())) for v in text.unique().to_list()}
            numbers.append(text.replace_strict(codes, return_dtype=pl.Float64).alias(name))
    table = pl.DataFrame([used["pid"], *numbers])
    if used["pid"].n_unique() < used.height:
        table = table.group_by("pid").agg(pl.all().sum())
    totals = table.sort("pid")
    ids = totals["pid"].cast(pl.Int64).to_numpy()
    return {name: (ids, totals[name].to_numpy()) for name in columns}


def _frames(n: int = 3000) -> dict[str, pl.DataFrame]:
    rng = np.random.default_rng(5)
    pid = np.arange(1_000_000, 1_000_000 + n, dtype=np.int64)
    bmi = rng.normal(27, 5, n)
    bmi[rng.integers(0, n, 5)] = [300, -40, 95, 0.5, 70]  # outliers the clip moves
    base = pl.DataFrame({"pid": pid, "bmi": bmi, "year": rng.integers(1937, 1971, n),
                         "sex": rng.choice(["F", "M"], n), "obese": (bmi > 30).astype(np.int8)})
    gaps = base.with_columns(pl.when(pl.Series(rng.random(n) < 0.1)).then(None)
                             .otherwise(pl.col("bmi")).alias("bmi"))
    repeated = pl.concat([base, base.sample(n // 3, seed=1)]).sort("pid")
    shuffled = base.sample(fraction=1.0, shuffle=True, seed=2)
    return {"one each, in order": base, "missing values": gaps,
            "several rows each": repeated, "out of order": shuffled}


@pytest.mark.parametrize("k", [0, 1, 10, 2000])
@pytest.mark.parametrize("which", list(_frames()))
def test_clip_rows_and_winsorised_as_before(which: str, k: int) -> None:
    frame = _frames()[which]
    ids = frame["pid"].to_numpy()
    for name in ("bmi", "year"):
        x = frame[name].cast(pl.Float64).to_numpy()
        assert np.array_equal(winsor.clip_rows(x, ids, k), _clip_rows_before(x, ids, k),
                              equal_nan=True)
    done = winsorised(frame, ["bmi", "year"], ["bmi", "year", "sex"], k)
    complete = frame.select(pl.all_horizontal(pl.col(c).is_not_null()
                                              for c in ("bmi", "year", "sex"))).to_series()
    for name in ("bmi", "year"):
        x = frame[name].cast(pl.Float64).to_numpy().astype(np.float64, copy=True)
        used = np.isfinite(x) & complete.to_numpy()
        x[used] = _clip_rows_before(x[used], ids[used], k)
        before = pl.Series(name, x, dtype=pl.Float64).fill_nan(None)
        assert done[name].dtype == pl.Float64
        assert done[name].equals(before), (which, name)


@pytest.mark.parametrize("which", list(_frames()))
def test_vectors_as_before(which: str) -> None:
    frame = _frames()[which]
    columns = ["bmi", "year", "sex", "obese"]
    now, before = vectors(frame, columns), _vectors_before(frame, columns)
    assert list(now) == list(before)
    for name in columns:
        assert np.array_equal(now[name][0], before[name][0])
        assert np.array_equal(now[name][1], before[name][1], equal_nan=True)
        assert now[name][0].dtype == before[name][0].dtype
        assert now[name][1].dtype == before[name][1].dtype


@pytest.mark.parametrize("n", [1, 7, 2000, 30_000])
def test_comparable_pairs_as_the_pool_sizes_in_time_order(n: int) -> None:
    from strongroom.enclave.analyses import cox_sums
    from strongroom.enclave.analyses import proportional_hazards as ph

    rng = np.random.default_rng(n)
    for days in (3, 400, None):  # many ties, some, none
        t = rng.uniform(0, 26, n)
        if days is not None:
            t = np.round(t * days) / days
        happened = rng.random(n) < 0.3
        order = np.argsort(t)
        before = int(ph._pool_sizes(t[order], happened[order]).sum())
        assert cox_sums.comparable_pairs(t, happened) == before
    old_chunk = cox_sums.PAIRS_CHUNK
    try:  # chunks that split the rows, ties across their edges
        cox_sums.PAIRS_CHUNK = 97
        t = np.round(rng.uniform(0, 5, n) * 2) / 2
        happened = rng.random(n) < 0.5
        order = np.argsort(t)
        assert cox_sums.comparable_pairs(t, happened) == \
            int(ph._pool_sizes(t[order], happened[order]).sum())
    finally:
        cox_sums.PAIRS_CHUNK = old_chunk
