"""OLS and logistic regression from row-level sums (analyses/sums.py), the rows split by
participant as a cluster's partitions split them: the host's Result, fact for fact, and the
host's own fit (or refusal) wherever the sums cannot say."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import polars as pl
import pytest

from strongroom.enclave.analyses import glm, regression, sums
from strongroom.enclave.analyses.run import run
from strongroom.enclave.results import Result
from strongroom.enclave.steps import Rounding
from strongroom.errors import Invalid
from tests.placed_rows import Counting

NARROW = {"pid", "y", *(f"v{i}" for i in range(10))}  # the narrow frame placed
ROUNDING = Rounding(b"model sums test key, 32 bytes..")
COVARIATES = ["sex", "birth_year", "centre"]


def _cohort(n: int = 3000, repeats: bool = False, seed: int = 5) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    pid = np.sort(rng.choice(10**6, n, replace=False)) + 1_000_000
    if repeats:  # some participants on two or three rows
        pid = np.sort(np.concatenate([pid, rng.choice(pid, n // 3)]))
    m = len(pid)
    sex = rng.integers(0, 2, m)
    by = rng.integers(1937, 1971, m)
    centre = rng.integers(11000, 11012, m)
    bmi = 27 + 1.5 * sex + 0.03 * (by - 1950) + (centre - 11000) * 0.1 + rng.normal(0, 4, m)
    return pl.DataFrame({"pid": pid, "sex": sex, "birth_year": by, "centre": centre,
                         "bmi": bmi, "obese": (bmi > 30).astype(np.int64)})


@contextlib.contextmanager
def exact_tables() -> Iterator[list[tuple[np.ndarray, np.ndarray]]]:
    """The coefficient tables and steps each fit hands to its rounding."""
    caught: list[tuple[np.ndarray, np.ndarray]] = []
    original = regression._rounded

    def spy(table: Any, steps: Any, df: Any, rounding: Rounding) -> Any:
        caught.append((table.copy(), steps.copy()))
        return original(table, steps, df, rounding)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(regression, "_rounded", spy)
        patch.setattr(glm, "_rounded", spy)
        yield caught


def same_fit(host: Result, placed: Result, exact: list[tuple[np.ndarray, np.ndarray]]) -> None:
    """The same cells (labels, kinds, contributors, None-ness; each value within the one
    step its keyed draw may go either way), facts, id sets, notes and vectors; the exact
    coefficients to 1e-7 (the host's Newton steps, statsmodels', stop once no coefficient
    moves by 1e-8: two fits of the same sums summed in another order settle within that) and
    their steps identical."""
    (table_host, steps_host), (table_placed, steps_placed) = exact
    assert np.array_equal(steps_host, steps_placed)
    assert np.allclose(table_placed[:, :4], table_host[:, :4], rtol=1e-7, atol=1e-12)
    assert [(c.row, c.column, c.kind, c.table) for c in host.cells] == \
        [(c.row, c.column, c.kind, c.table) for c in placed.cells]
    steps = dict(zip([c.row for c in host.cells if c.column == "coef"], steps_host,
                     strict=True))
    for a, b in zip(host.cells, placed.cells, strict=True):
        assert np.array_equal(np.asarray(a.contributors), np.asarray(b.contributors))
        assert (a.value is None) == (b.value is None)
        if a.exact is not None:
            assert b.exact == pytest.approx(a.exact, rel=1e-7)
        if a.value is not None and b.value is not None and a.row in steps \
                and a.column != "p":
            assert abs(a.value - b.value) <= steps[a.row] * (1 + 1e-9)
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


SPECS: list[tuple[str, dict[str, Any]]] = [
    ("logistic", {"kind": "logistic", "outcome": "obese", "covariates": COVARIATES,
                  "categorical": ["sex", "centre"]}),
    ("ols", {"kind": "ols", "outcome": "bmi", "covariates": COVARIATES,
             "categorical": ["sex", "centre"]}),
    ("ols, numbers only", {"kind": "ols", "outcome": "bmi", "covariates": ["birth_year"]}),
    ("glm binomial", {"kind": "glm", "family": "binomial",
                      "formula": "obese ~ birth_year + C(sex) + C(centre)"}),
    ("glm gaussian", {"kind": "glm", "family": "gaussian",
                      "formula": "bmi ~ C(centre) + birth_year + sex"}),
]


@pytest.mark.parametrize("repeats", [False, True], ids=["one row each", "repeated rows"])
@pytest.mark.parametrize(("name", "spec"), SPECS, ids=[s[0] for s in SPECS])
def test_the_sums_give_the_hosts_result(name: str, spec: dict[str, Any], repeats: bool) -> None:
    frame = _cohort(repeats=repeats)
    place = Counting(NARROW)
    with exact_tables() as exact:
        host = run(spec, frame, rounding=ROUNDING, k=10)
        placed = run(spec, frame, rounding=ROUNDING, k=10, place=place)
    assert place.placed == 1 and place.jobs >= 3
    same_fit(host, placed, exact)


def _refusal(call: Callable[[], Result]) -> list[str]:
    with pytest.raises(Invalid) as refused:
        call()
    return refused.value.reasons


@pytest.mark.parametrize("spec", [
    # separation: the outcome is bmi > 30, so bmi separates it (Newton does not settle)
    {"kind": "logistic", "outcome": "obese", "covariates": ["bmi", "sex"]},
    # collinear: a covariate twice under two names
    {"kind": "ols", "outcome": "bmi", "covariates": ["birth_year", "twice"]},
    {"kind": "logistic", "outcome": "obese", "covariates": ["birth_year", "twice"]},
    # a constant outcome
    {"kind": "ols", "outcome": "one", "covariates": ["birth_year"]},
], ids=["separation", "collinear ols", "collinear logistic", "constant outcome"])
def test_what_the_sums_cannot_say_the_host_says(spec: dict[str, Any]) -> None:
    frame = _cohort(800).with_columns(twice=pl.col("birth_year") * 2, one=pl.lit(1.0))
    host = _refusal(lambda: run(spec, frame, rounding=ROUNDING, k=10))
    placed = _refusal(lambda: run(spec, frame, rounding=ROUNDING, k=10, place=Counting(NARROW)))
    assert host == placed


@pytest.mark.parametrize("spec", [
    {"kind": "glm", "family": "binomial", "formula": "obese ~ cr(birth_year, df=4) + C(sex)"},
    {"kind": "glm", "family": "gaussian", "formula": "bmi ~ birth_year * C(sex)"},
    {"kind": "glm", "family": "poisson", "formula": "obese ~ birth_year"},
    {"kind": "glm", "family": "gaussian", "formula": "bmi ~ birth_year", "errors": "robust"},
], ids=["spline", "interaction", "poisson", "robust errors"])
def test_a_glm_the_sums_do_not_cover_is_the_hosts_own(spec: dict[str, Any]) -> None:
    frame = _cohort(600)
    place = Counting(NARROW)
    with exact_tables() as exact:
        host = run(spec, frame, rounding=ROUNDING, k=10)
        there = run(spec, frame, rounding=ROUNDING, k=10, place=place)
    assert place.placed == 0
    assert np.array_equal(exact[0][0], exact[1][0], equal_nan=True)
    assert [c.value for c in host.cells] == [c.value for c in there.cells]


def test_an_engine_that_fits_here_is_not_asked_for_rows() -> None:
    frame = _cohort(500)
    spec = SPECS[0][1]
    with exact_tables() as exact:
        host = run(spec, frame, rounding=ROUNDING, k=10)
        nowhere = run(spec, frame, rounding=ROUNDING, k=10, place=lambda _: None)
    assert np.array_equal(exact[0][0], exact[1][0])  # the host's own fit, bit for bit
    assert [c.value for c in host.cells] == [c.value for c in nowhere.cells]


def test_parts_combine_by_sum_and_by_maximum() -> None:
    combined = sums.reduce([{"a": np.array([1.0, 2.0]), "max:b": np.array([3.0])},
                            {"a": np.array([0.5, 0.5]), "max:b": np.array([1.0])}])
    assert combined["a"].tolist() == [1.5, 2.5] and combined["max:b"].tolist() == [3.0]
