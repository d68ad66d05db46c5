"""Released GWAS figures are as precise as one participant's influence allows, and no finer.

Guarantee: a released effect's step and a released −log10 p's step are each at least what any
one participant moves that figure (by leaving the fit), and the released figure is within one
step of the exact one. Ground truth: every participant left out of the least-squares fit in
turn, with the residual variance and degrees of freedom refitted (as plink2 would fit the
group without them).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
import pytest

from strongroom.enclave.analyses.spec import GwasSpec
from strongroom.genomics.release import (
    FreshLedger,
    GeneticRules,
    _moved_stat,
    keyed_log10_p,
    log10_p_step,
    p_values,
    release,
)
from strongroom.genomics.study import GwasRun, Spread


def _fit(g: npt.NDArray[np.float64], y: npt.NDArray[np.float64],
         c: npt.NDArray[np.float64]) -> tuple[float, float, int]:
    """β, SE and residual df of y ~ 1 + c + g."""
    x = np.column_stack([np.ones(y.size), c, g])
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    r = y - x @ coef
    df = y.size - x.shape[1]
    sigma2 = float(r @ r) / df
    cov = sigma2 * np.linalg.inv(x.T @ x)
    return float(coef[-1]), float(np.sqrt(cov[-1, -1])), df


def _spread(y: npt.NDArray[np.float64], c: npt.NDArray[np.float64]) -> Spread:
    """The trait's spread as the study computes it (study._spread)."""
    design = np.column_stack([np.ones(y.size), c])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    r = y - design @ coef
    df = y.size - design.shape[1] - 1
    return Spread(float(np.abs(r).max()), float(r @ r) / df, df)


@pytest.mark.parametrize(("effect", "freq"), [(0.0, 0.3), (0.3, 0.3), (1.0, 0.4), (0.6, 0.05)])
def test_one_participant_moves_neither_figure_by_more_than_its_step(effect: float,
                                                                    freq: float) -> None:
    rng = np.random.default_rng(54)
    n = 600
    c = np.column_stack([rng.integers(0, 2, n), rng.normal(size=n)]).astype(np.float64)
    g = rng.binomial(2, freq, n).astype(np.float64)
    y = 0.5 * c[:, 0] + effect * g + rng.standard_t(4, n)  # heavy tails: outliers exist
    y[int(np.argmax(g))] += 8.0  # and a carrier far out, the worst case for the bound
    beta, se, df = _fit(g, y, c)
    spread = _spread(y, c)
    stat = np.array([beta / se])
    moved = np.array([2.0 * spread.largest * se**2 / spread.variance])  # release._moved
    nudge = _moved_stat(stat, np.array([se]), moved, spread, False, n)
    exact, steps = log10_p_step(stat, nudge, df)
    step = steps[0]
    betas, nlps = [], []
    for i in range(n):
        keep = np.arange(n) != i
        b, s, d = _fit(g[keep], y[keep], c[keep])
        betas.append(b)
        nlps.append(p_values(np.array([b / s]), d)[1][0])
    # the effect's step (a power of two at least `moved`) covers every participant's pull
    assert np.max(np.abs(np.array(betas) - beta)) <= moved[0]
    assert np.max(np.abs(np.array(nlps) - exact[0])) <= step
    # the released −log10 p is one of the two multiples of its step around the exact figure
    released = keyed_log10_p(stat, nudge, df, b"salt", b"group", np.array([0]))[0]
    assert abs(released - exact[0]) < step and np.isclose(released / step,
                                                           round(released / step))


def test_a_hit_past_a_floats_reach_has_a_finite_step_and_figure() -> None:
    stat = np.array([60.0, -60.0, 0.0])
    nudge = np.array([0.01, 0.01, 0.01])
    released = keyed_log10_p(stat, nudge, None, b"s", b"k", np.arange(3))
    assert np.all(np.isfinite(released)) and released[0] > 700 and released[2] >= 0.0
    assert np.all(log10_p_step(stat, nudge, None)[1] > 0)


def test_the_same_group_draws_alike_and_another_group_does_not_aim() -> None:
    """Keyed draws: the same figures of the same group round alike (averaging copies gains
    nothing); the draws depend on the secret, so no one can aim at a boundary."""
    rng = np.random.default_rng(1)
    stat = rng.normal(size=2_000)
    nudge = np.full(2_000, 0.2)
    variants = np.arange(2_000)
    first = keyed_log10_p(stat, nudge, 1_000, b"secret", b"group", variants)
    assert np.array_equal(first, keyed_log10_p(stat, nudge, 1_000, b"secret", b"group",
                                               variants))
    other = keyed_log10_p(stat, nudge, 1_000, b"other secret", b"group", variants)
    assert 0.2 < np.mean(first != other) < 0.8
    # unbiased: over many variants the rounding errors average to about nothing
    _, exact = p_values(stat, 1_000)
    assert abs(np.mean(first - exact)) < 0.1 * np.mean(log10_p_step(stat, nudge, 1_000)[1])


def _run(largest: float, n: int = 5_000) -> GwasRun:
    """A linear GWAS's results over 2,000 variants of ``n`` people, its trait's largest
    residual ``largest`` (SD 1)."""
    rng = np.random.default_rng(3)
    m = 2_000
    freq = rng.uniform(0.05, 0.5, m)
    se = 1.0 / np.sqrt(2 * freq * (1 - freq) * n)
    beta = rng.normal(0, se)
    results = pl.DataFrame({
        "variant": np.arange(m), "trait": ["y"] * m, "test": ["ADD"] * m, "n": [n] * m,
        "alt_count": np.round(2 * n * freq), "alt_freq": freq, "mac": np.round(2 * n * freq),
        "beta": beta, "se": se, "stat": beta / se, "p": np.full(m, 0.5),
        "error": pl.Series([None] * m, dtype=pl.String), "chrom": ["1"] * m,
        "pos": np.arange(m) * 100, "id": [f"rs{j}" for j in range(m)], "ref": ["A"] * m,
        "alt": ["G"] * m, "info": np.ones(m), "cohort_freq": freq})
    spec = GwasSpec(traits=["y"], covariates=[], principal_components=0)
    return GwasRun(spec, results, {"y": np.arange(n, dtype=np.int64)}, {}, n, m, [],
                   {"y": Spread(largest, 1.0, n - 2)})


def test_the_largest_residual_is_used_only_to_its_grid() -> None:
    """The largest residual sets every step, so the release may use it only rounded (a few
    hundred steps would bracket the exact figure to a percent): two values in one cell of
    the 2^(1/4) grid release the same table, figure for figure; the next cell does not."""
    rules = GeneticRules(min_mac=20, min_group_mac=10, min_frequency_group=50, alpha=0.05,
                         max_power=0.99)

    def table(largest: float) -> pl.DataFrame:
        return release(_run(largest), rules, FreshLedger(), salt=b"s").table

    low, high = 2.0 ** (9 / 4) * 1.0001, 2.0 ** (10 / 4)  # one cell: (4.76, 5.66]
    assert table(low).equals(table(high))
    assert table(5.0).equals(table(high))
    assert not table(high).equals(table(high * 1.001))


def _benchmark() -> Any:
    """benchmarks/gwas_release_precision.py, whose comparison the tests share."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[2] / "benchmarks" / "gwas_release_precision.py"
    spec = importlib.util.spec_from_file_location("gwas_release_precision", path)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def test_the_precision_benchmark_measures_each_variant_against_its_exact_fit() -> None:
    """benchmarks/gwas_release_precision.py's comparison, on a small run (its demo is a
    benchmark's): every released variant is met with its exact fit, and each effect is off by
    less than its released step."""
    bench = _benchmark()
    run = _run(5.0)
    rules = GeneticRules(min_mac=20, min_group_mac=10, min_frequency_group=50, alpha=0.05,
                         max_power=0.99)
    released = release(run, rules, FreshLedger(), salt=b"s")
    table = bench.compared(run, released)
    assert table.height == released.table.height > 1_000
    steps = released.table.select("id", "beta_step").join(table, on="id")
    assert (steps["beta_off"] * steps["se_exact"] < steps["beta_step"]).all()
    assert table["nlp_off"].max() < 2.0 and table["beta_off"].max() < 2.0


def test_the_precision_rule_releases_only_figures_within_its_steps_of_the_exact_fit() -> None:
    """Issue 54's precision (released β within 0.1 SE and −log10 p within 0.1 of the exact
    fit, which is plink2's to 5e-6) as a rule the custodian sets: every variant released
    under it is that close, whatever the keyed draws; the variants whose rounding would be
    coarser (their step is at least one participant's pull) are withheld and counted with
    the reason; and the defaults never bind."""
    bench = _benchmark()
    run = _run(5.0, n=50_000)  # minor allele counts 5,000 to 50,000
    base = dict(min_mac=20, min_group_mac=10, min_frequency_group=50, alpha=0.05,
                max_power=0.99)
    loose = release(run, GeneticRules(**base), FreshLedger(), salt=b"s")  # type: ignore[arg-type]
    assert not any("precision" in reason for reason in loose.withheld)
    off = bench.compared(run, loose)
    assert (off["beta_off"] > 0.1).sum() > 50  # without the rule, the target does not hold
    for salt in (b"s", b"another project"):
        strict = release(run, GeneticRules(**base, max_effect_step=0.1,  # type: ignore[arg-type]
                                           max_log10_p_step=0.1), FreshLedger(), salt=salt)
        held = bench.compared(run, strict)
        assert held.height > 300
        assert held["beta_off"].max() < 0.1 and held["nlp_off"].max() < 0.1
        [(reason, withheld)] = [(r, k) for r, k in strict.withheld.items() if "precision" in r]
        assert "0.1 of its standard error" in reason and withheld > 1_000
        assert held.height + withheld == loose.table.height  # nothing else changed
        assert strict.table["beta_step"].max() <= 0.1 * run.results["se"].max()
    # the effect's rule alone: every effect within 0.1 SE, and more variants than under both
    effects = release(run, GeneticRules(**base, max_effect_step=0.1),  # type: ignore[arg-type]
                      FreshLedger(), salt=b"s")
    kept = bench.compared(run, effects)
    assert kept["beta_off"].max() < 0.1 and kept.height >= held.height
    # the figures released under both are the same draws: the rule only leaves variants out
    same = strict.table.join(release(run, GeneticRules(**base), FreshLedger(),  # type: ignore[arg-type]
                                     salt=b"another project").table,
                             on="id", suffix="_loose")
    assert same.height == strict.table.height
    assert (same["beta"] == same["beta_loose"]).all()
    assert (same["neg_log10_p"] == same["neg_log10_p_loose"]).all()
