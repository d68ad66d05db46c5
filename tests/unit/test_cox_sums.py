"""Cox models from per-time sums over rows split by participant (analyses/cox_sums.py), as a
cluster's partitions split them: Efron's likelihood, gradient and information as the host's,
the fit as ``proportional_hazards.fit``, the Result as ``survival.cox``'s fact for fact, and
the host's own fit (or refusal) wherever the sums cannot say."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from functools import partial
from typing import Any

import numpy as np
import polars as pl
import pytest

from strongroom.enclave.analyses import cox_sums, sums, survival
from strongroom.enclave.analyses import proportional_hazards as ph
from strongroom.enclave.analyses.run import run
from strongroom.enclave.results import Result
from strongroom.enclave.steps import Rounding
from strongroom.errors import Invalid
from tests.placed_rows import Counting

# the narrow frame placed: pid, the time, the event and the covariates under names of their own
NARROW = {"pid", cox_sums.TIME, cox_sums.EVENT, *(f"v{i}" for i in range(10))}
ROUNDING = Rounding(b"cox sums test key, 32 bytes.....")
SPEC: dict[str, Any] = {"kind": "cox", "time": "t", "event": "e",
                        "covariates": ["sex", "birth_year", "centre"], "categorical": ["centre"]}


def _cohort(n: int = 2000, repeats: bool = False, tied: bool = True,
            seed: int = 3) -> pl.DataFrame:
    """Times from hazards of sex, birth year and a centre; ``tied``: to a tenth (many ties);
    ``repeats``: some participants on two or three rows."""
    rng = np.random.default_rng(seed)
    pid = np.sort(rng.choice(10**6, n, replace=False)) + 1_000_000
    if repeats:
        pid = np.sort(np.concatenate([pid, rng.choice(pid, n // 3)]))
    m = len(pid)
    sex = rng.integers(0, 2, m)
    by = rng.integers(1937, 1971, m)
    centre = rng.integers(11000, 11006, m)
    hazard = np.exp(0.4 * sex + 0.03 * (by - 1950) + 0.1 * (centre - 11000))
    t = rng.exponential(1 / hazard) * 10
    return pl.DataFrame({"pid": pid, "sex": sex, "birth_year": by, "centre": centre,
                         "t": np.round(t, 1) if tied else t,
                         "e": (rng.random(m) < 0.6).astype(np.int64)})


@contextlib.contextmanager
def exact_hazards() -> Iterator[list[tuple[np.ndarray, np.ndarray]]]:
    """The hazard-ratio tables and steps each Cox fit hands to its rounding."""
    caught: list[tuple[np.ndarray, np.ndarray]] = []
    original = survival._hazard_ratios_rounded

    def spy(table: Any, steps: Any, rounding: Rounding) -> Any:
        caught.append((table.copy(), steps.copy()))
        return original(table, steps, rounding)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(survival, "_hazard_ratios_rounded", spy)
        yield caught


@contextlib.contextmanager
def host_fit_unusable() -> Iterator[None]:
    """The host's own Cox fit, rank check, residuals, leverages and Harrell's C made to
    fail."""
    def never(*_: object, **__: object) -> None:
        raise AssertionError("the host fitted the Cox model")

    with pytest.MonkeyPatch.context() as patch:
        for module, name in ((ph, "fit"), (ph, "_Efron"), (ph, "concordance"),
                             (survival, "score_residuals"), (survival, "check_rank"),
                             (survival, "influence")):
            patch.setattr(module, name, never)
        yield


def same_cox(host: Result, placed: Result, exact: list[tuple[np.ndarray, np.ndarray]]) -> None:
    """The same cells (labels, kinds, contributors, None-ness; each hazard ratio within the
    one step its keyed draw may go either way, and a p-value of rounded figures that moved
    as it may), facts, id sets, notes and vectors; the exact
    hazard ratios, limits and p-values to 1e-7 (Newton stops at 1e-9 on the standardised
    scale), the statistics' exact values to 1e-7 and the rounding steps identical."""
    (table_host, steps_host), (table_placed, steps_placed) = exact
    assert np.array_equal(steps_host, steps_placed)
    assert np.allclose(table_placed, table_host, rtol=1e-7, atol=1e-300)
    assert [(c.row, c.column, c.kind, c.table) for c in host.cells] == \
        [(c.row, c.column, c.kind, c.table) for c in placed.cells]
    ratio = {row: float(np.nanmax(np.abs(table_host[i, :3]))) * np.expm1(step)
             for i, (row, step) in enumerate(zip(
                 dict.fromkeys(c.row for c in host.cells if c.column == "hr"), steps_host,
                 strict=True))}
    # a p-value is worked out from the rounded figures: where a figure landed a step away
    # (a limit rounded to 0 leaves no p), so may it
    moved = {a.row for a, b in zip(host.cells, placed.cells, strict=True)
             if a.row in ratio and a.column != "p" and a.value != b.value}
    for a, b in zip(host.cells, placed.cells, strict=True):
        assert np.array_equal(np.asarray(a.contributors), np.asarray(b.contributors))
        if a.column == "p" and a.row in moved:
            continue
        assert (a.value is None) == (b.value is None)
        if a.exact is not None:
            assert b.exact == pytest.approx(a.exact, rel=1e-7)
        if a.value is not None and b.value is not None and a.row in ratio \
                and a.column != "p":
            assert abs(a.value - b.value) <= 2 * ratio[a.row] + 1e-12
    assert host.facts == placed.facts
    assert host.levels.keys() == placed.levels.keys()
    for key, who in host.levels.items():
        assert np.array_equal(who, placed.levels[key]), key
    assert host.notes == placed.notes
    assert placed.influence == pytest.approx(host.influence, rel=1e-7)
    assert host.vectors.keys() == placed.vectors.keys()
    for key, (ids, values) in host.vectors.items():
        assert np.array_equal(ids, placed.vectors[key][0])
        assert np.array_equal(values, placed.vectors[key][1])


@pytest.mark.parametrize("parts", [1, 4])
@pytest.mark.parametrize("tied", [True, False], ids=["tied times", "distinct times"])
@pytest.mark.parametrize("repeats", [False, True], ids=["one row each", "repeated rows"])
def test_the_sums_give_the_hosts_result(repeats: bool, tied: bool, parts: int) -> None:
    frame = _cohort(repeats=repeats, tied=tied)
    place = Counting(NARROW, parts)
    with exact_hazards() as exact:
        host = run(SPEC, frame, rounding=ROUNDING, k=10)
        with host_fit_unusable():
            placed = run(SPEC, frame, rounding=ROUNDING, k=10, place=place)
    # the moments, two jobs per Newton step (and at 0), the facts
    assert place.placed == 1 and place.jobs >= 6
    same_cox(host, placed, exact)


def _split(x: np.ndarray, t: np.ndarray, e: np.ndarray, parts: int = 3
           ) -> tuple[cox_sums._Efron, ph._Efron, np.ndarray]:
    """The same standardised covariates summed in parts and by the host's evaluation."""
    n, p = x.shape
    names = [f"v{j}" for j in range(p)]
    frame = pl.DataFrame({"pid": np.arange(n), cox_sums.TIME: t, cox_sums.EVENT: e,
                          **dict(zip(names, x.T, strict=True))})
    recipe = sums.Recipe(tuple((name, None) for name in names))
    centre = x.mean(axis=0)
    scale = x.std(axis=0, ddof=1)
    s = cox_sums.Standard(recipe, centre, np.zeros(p), scale)
    z = (x - centre) / scale
    rows = sums.LocalRows(frame, parts)
    mine = cox_sums._Efron(rows, s, cox_sums.Times.of(t, e), z.max(axis=0), z.min(axis=0))
    return mine, ph._Efron(z, t, e == 1), z


@pytest.mark.parametrize("tied", [True, False], ids=["tied times", "distinct times"])
def test_efrons_sums_per_time_are_the_hosts(tied: bool) -> None:
    rng = np.random.default_rng(11)
    n = 700
    x = np.column_stack([rng.normal(size=n), rng.integers(0, 2, n), rng.normal(5, 3, n)])
    t = rng.integers(1, 40, n).astype(float) if tied else rng.exponential(size=n)
    e = (rng.random(n) < 0.7).astype(float)
    mine, host, _ = _split(x, t, e)
    for beta in (np.zeros(3), np.array([0.3, -0.8, 0.2]), np.array([4.0, 3.0, -5.0])):
        found, expected = mine(beta), host(beta)
        assert found[0] == pytest.approx(expected[0], rel=1e-12)
        assert np.allclose(found[1], expected[1], rtol=1e-9, atol=1e-9)
        assert np.allclose(found[2], expected[2], rtol=1e-9, atol=1e-9)


def test_the_fit_is_proportional_hazards_fit() -> None:
    """cox_sums.fit against fit() on the centred covariates, and the facts against the
    host's own score residuals and leverages, on rows split in parts with repeats."""
    frame = _cohort(1500, repeats=True)
    narrow = pl.DataFrame({"pid": frame["pid"], cox_sums.TIME: frame["t"].cast(pl.Float64),
                           cox_sums.EVENT: frame["e"].cast(pl.Float64),
                           "v0": frame["sex"].cast(pl.Float64),
                           "v1": frame["birth_year"].cast(pl.Float64),
                           "v2": frame["centre"]})
    recipe = sums.Recipe((("v0", None), ("v1", None), ("v2", 11001), ("v2", 11003)))
    d = sums.Design(sums.LocalRows(narrow, 5), recipe, narrow.height, True)
    found = cox_sums.fit(d, narrow)
    x = cox_sums.terms(sums.columns(narrow), recipe)
    t, e = narrow[cox_sums.TIME].to_numpy(), narrow[cox_sums.EVENT].to_numpy()
    centred = x - x.mean(axis=0)
    expected = ph.fit(centred, t, e)
    assert np.allclose(found.fit.beta, expected.beta, rtol=1e-7)
    assert np.allclose(found.fit.variance, expected.variance, rtol=1e-7)
    assert found.fit.log_likelihood == pytest.approx(expected.log_likelihood, rel=1e-12)
    assert found.fit.steps == expected.steps
    ids = narrow["pid"].to_numpy()
    delta = survival.score_residuals(centred, t, e, expected.beta) @ expected.variance
    codes = np.unique(ids, return_inverse=True)[1]
    most = [np.bincount(codes, weights=np.abs(column)).max() for column in delta.T]
    assert np.allclose(found.most, most, rtol=1e-7)
    with_intercept = np.column_stack([np.ones(len(t)), x])
    assert found.influence == pytest.approx(survival.influence(with_intercept, ids), rel=1e-7)
    xb = centred @ expected.beta
    assert found.concordance == pytest.approx(ph.concordance(t, e, xb), rel=1e-12)
    assert found.largest_xb == pytest.approx(float(np.abs(xb).max()), rel=1e-9)
    assert found.spread == pytest.approx(float(np.ptp(xb)), rel=1e-9)


@pytest.mark.parametrize("seed", range(12))
def test_harrells_c_counted_in_parts_is_the_hosts(seed: int) -> None:
    """Times and risks tied or not, events rare to certain, a participant on several rows,
    in one to five parts: the parts' counts give proportional_hazards.concordance exactly."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 400))
    tied_times, tied_risks = rng.random() < 0.5, rng.random() < 0.5
    t = rng.integers(0, max(2, n // 4), n).astype(float) if tied_times \
        else rng.exponential(size=n)
    risk = rng.integers(0, 4, n).astype(float) if tied_risks else rng.normal(size=n)
    e = (rng.random(n) < rng.choice([0.05, 0.4, 1.0])).astype(float)
    e[0] = 1.0
    frame = pl.DataFrame({"pid": np.sort(rng.integers(0, n // 2 + 1, n)),
                          cox_sums.TIME: t, cox_sums.EVENT: e, "v0": risk})
    recipe = sums.Recipe((("v0", None),))
    one, zero = np.ones(1), np.zeros(1)
    events = {k: v[e == 1] for k, v in sums.columns(frame).items()}
    work = cox_sums._concordance_of(events, recipe, zero, one)
    found = sums.LocalRows(frame, int(rng.integers(1, 6))).each(work)
    order = np.argsort(t)
    pairs = int(ph._pool_sizes(t[order], (e == 1)[order]).sum())
    expected = ph.concordance(t, e, risk)
    if pairs == 0:
        assert np.isnan(expected)
        return
    assert (found["correct"][0] + found["tied"][0] / 2) / pairs == pytest.approx(
        expected, abs=1e-15)


def _refusal(spec: dict[str, Any], frame: pl.DataFrame, place: Counting | None) -> list[str]:
    with pytest.raises(Invalid) as refused:
        run(spec, frame, rounding=ROUNDING, k=10, place=place)
    return refused.value.reasons


def _separable(n: int = 300) -> pl.DataFrame:
    rng = np.random.default_rng(8)
    e = (rng.random(n) < 0.5).astype(np.int64)
    return pl.DataFrame({"pid": np.arange(n), "t": rng.exponential(10, n), "e": e,
                         "x": rng.normal(size=n), "flag": e.astype(float),
                         "twice": 0.0, "one": 1.0})


@pytest.mark.parametrize(("covariates", "tried"), [
    (["x", "flag"], True),  # the event itself: separation (ranked as the times, or no maximum)
    (["x", "one"], True),  # a constant: no variance
    (["x", "twice"], True),  # constant too, and collinear with the intercept
], ids=["separation", "constant", "collinear"])
def test_what_the_sums_cannot_say_the_host_says(covariates: list[str], tried: bool) -> None:
    frame = _separable().with_columns(twice=pl.col("x") * 2)
    spec = {"kind": "cox", "time": "t", "event": "e", "covariates": covariates}
    place = Counting(NARROW)
    assert _refusal(spec, frame, place) == _refusal(spec, frame, None)
    assert place.placed == 1 and (place.jobs > 0) == tried


def test_a_fit_newton_cannot_settle_is_the_hosts_refusal() -> None:
    """Separation the rank check does not see: each event has the highest x of those still
    at risk (x = −t for the events, far lower for the censored, whose ranks then do not
    follow the times), so the likelihood rises for ever; Newton runs off on the executors
    first, then on the host, which refuses in its words."""
    rng = np.random.default_rng(2)
    n = 400
    e = (rng.random(n) < 0.5).astype(np.int64)
    t = np.where(e == 1, rng.uniform(0, 10, n), rng.uniform(0, 20, n))
    x = np.where(e == 1, -t, -100 + rng.normal(size=n))
    frame = pl.DataFrame({"pid": np.arange(n), "t": t, "e": e, "x": x})
    spec = {"kind": "cox", "time": "t", "event": "e", "covariates": ["x"]}
    place = Counting(NARROW)
    refused = _refusal(spec, frame, place)
    assert refused == _refusal(spec, frame, None) == [survival.NOT_CONVERGED]
    assert place.jobs > 3  # Newton's steps were taken on the parts first


def test_refusals_before_the_fit_send_no_rows() -> None:
    frame = _cohort(300).with_columns(e=pl.when(pl.col("centre") == 11002).then(0)
                                      .otherwise(pl.col("e")))
    place = Counting(NARROW)
    assert _refusal(SPEC, frame, place) == _refusal(SPEC, frame, None)
    assert place.placed == 0


def test_the_evaluation_keeps_the_estimates_own_sums() -> None:
    """The facts job reads the last evaluation's per-time sums: Newton's last evaluation is
    of the estimate it returns."""
    rng = np.random.default_rng(4)
    n = 500
    x = np.column_stack([rng.normal(size=n), rng.normal(size=n)])
    t = rng.exponential(1 / np.exp(0.5 * x[:, 0]))
    e = (rng.random(n) < 0.8).astype(float)
    mine, _, _ = _split(x, t, e)
    seen: list[np.ndarray] = []
    fitted = ph.maximised(lambda b: (seen.append(b.copy()), mine(b))[1], np.ones(2), list)
    assert mine.latest is not None
    assert np.array_equal(mine.latest[0], seen[-1]) and np.array_equal(seen[-1], fitted.beta)


def test_partials_of_empty_parts_add_nothing() -> None:
    frame = pl.DataFrame({"pid": np.arange(5), cox_sums.TIME: [1.0, 1, 2, 3, 4],
                          cox_sums.EVENT: [1.0, 1, 0, 0, 1], "v0": [0.5, 1, 2, 3, 4]})
    recipe = sums.Recipe((("v0", None),))
    s = cox_sums.Standard(recipe, np.zeros(1), np.zeros(1), np.ones(1))
    times = cox_sums.Times.of(frame[cox_sums.TIME].to_numpy(), frame[cox_sums.EVENT].to_numpy())
    assert times.shared.tolist() == [0, -1]  # two events at 1, one at 4: only 1's are sent
    work = partial(cox_sums._at_times, s=s, beta=np.array([0.2]), times=times.times,
                   shared=times.shared, shift=1.0)
    whole = work(sums.columns(frame))
    assert whole["d0"].shape == (1,) and whole["s0"].shape == (3,)
    added = sums.reduce([work(sums.columns(frame.head(0))), whole])
    assert all(np.array_equal(added[key], whole[key]) for key in whole)
