"""The membership-inference rule for released allele frequencies (Sankararaman et al. 2009)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import norm

from strongroom.genomics.membership import (
    MembershipInputError,
    Spent,
    homer_statistic,
    lr_power,
    lr_statistic,
    lr_terms,
    power_of,
    reference_outside,
    select_releasable,
    separation_budget,
    spent_before,
)

Z = norm.isf(1e-3)


def population(m: int, seed: int) -> np.ndarray:
    """ALT frequencies with a neutral-like (log-uniform) MAF spectrum from 0.5% to 50%."""
    rng = np.random.default_rng(seed)
    maf = np.exp(rng.uniform(math.log(0.005), math.log(0.5), m))
    return np.where(rng.random(m) < 0.5, maf, 1 - maf)


def group_frequencies(p: np.ndarray, n: int, seed: int) -> np.ndarray:
    """The ALT frequencies of n people drawn from a population in Hardy–Weinberg equilibrium."""
    return np.random.default_rng(seed).binomial(2 * n, p) / (2 * n)


# --- power: the paper's m/n law -------------------------------------------------------------


def test_power_follows_m_over_n_as_the_paper_says() -> None:
    p = population(20_000, seed=1)
    for n in (500, 2_000):
        pool = group_frequencies(p, n, seed=n)
        for m in (1_000, 4_000, 20_000):
            expected = norm.cdf(math.sqrt(m / n) - Z)
            assert lr_power(n, pool[:m], p[:m]) == pytest.approx(expected, abs=0.05), (n, m)


def test_power_grows_with_m_and_falls_with_n() -> None:
    p = population(16_000, seed=2)
    pool = group_frequencies(p, 1_000, seed=3)
    by_m = [lr_power(1_000, pool[:m], p[:m]) for m in (1_000, 2_000, 4_000, 8_000, 16_000)]
    assert by_m == sorted(by_m) and by_m[-1] - by_m[0] > 0.5
    by_n = [lr_power(n, group_frequencies(p, n, seed=n), p) for n in (500, 1_000, 4_000, 16_000)]
    assert by_n == sorted(by_n, reverse=True) and by_n[0] - by_n[-1] > 0.5


def test_nothing_released_is_a_guess_at_alpha() -> None:
    assert power_of(Spent(), alpha=1e-3) == 1e-3
    assert lr_power(100, [0.3, 0.6], [0.3, 0.6]) == pytest.approx(1e-3)


def test_terms_are_about_one_over_n_per_variant() -> None:
    p = population(50_000, seed=4)
    n = 800
    terms = lr_terms(n, group_frequencies(p, n, seed=5), p)
    assert terms.separation.min() >= 0  # the member side is always the higher one
    for moment in (terms.separation, terms.var_null, terms.var_member):
        assert float(moment.mean()) * n == pytest.approx(1.0, rel=0.1)


def test_plain_power_is_the_papers_normal_approximation() -> None:
    p = population(3_000, seed=21)
    pool = group_frequencies(p, 700, seed=22)
    t = lr_terms(700, pool, p)
    d, v0, v1 = t.separation.sum(), t.var_null.sum(), t.var_member.sum()
    paper = norm.cdf((d - Z * math.sqrt(v0)) / math.sqrt(v1))
    assert lr_power(700, pool, p, skew=False) == pytest.approx(paper, rel=1e-12)
    # left-skewed non-members (a realistic spectrum): the correction raises the power
    assert t.third_null.sum() < 0
    assert lr_power(700, pool, p) > paper * 1.05


def test_one_variant_far_out_does_not_swing_the_skew_correction() -> None:
    # absent from the group, 1% in the reference: carriers are surely not members, which
    # hardly helps find members; the plain approximation already says so
    for skew in (False, True):
        assert lr_power(1_000, [0.0], [0.01], skew=skew) < 0.01


# --- the statistic the attacker computes -----------------------------------------------------


def test_lr_statistic_is_the_per_genotype_log_likelihood_ratio() -> None:
    pool, ref = np.array([0.2, 0.7, 0.5]), np.array([0.3, 0.6, 0.5])
    g = np.array([[0, 1, 2], [2, np.nan, 1]])

    def per_genotype(x: float, ph: float, pr: float) -> float:
        return x * math.log(ph / pr) + (2 - x) * math.log((1 - ph) / (1 - pr))

    want = [
        sum(per_genotype(x, ph, pr) for x, ph, pr in zip(row, pool, ref, strict=True)
            if not math.isnan(x))
        for row in g
    ]
    assert lr_statistic(g, pool, ref) == pytest.approx(want, rel=1e-12)


def test_members_average_exactly_the_member_mean_the_power_uses() -> None:
    """Averaged over the group, L is Σ 2b + 2p̂(a − b): the μ₁ behind lr_power."""
    rng = np.random.default_rng(6)
    p = population(3_000, seed=7)
    g = rng.binomial(2, p, size=(400, p.size)).astype(float)
    pool = g.mean(axis=0) / 2
    keep = (pool > 0) & (pool < 1)  # clipping aside, the identity is exact
    pool, ref, g = pool[keep], p[keep], g[:, keep]
    non_members = rng.binomial(2, ref, size=(4_000, ref.size)).astype(float)
    terms = lr_terms(400, pool, ref, floor=1e-9)
    members, others = lr_statistic(g, pool, ref, floor=1e-9), lr_statistic(non_members, pool, ref)
    assert members.mean() - others.mean() == pytest.approx(terms.separation.sum(), rel=0.05)
    assert others.var() == pytest.approx(terms.var_null.sum(), rel=0.1)


def test_homer_statistic_puts_members_above_non_members() -> None:
    rng = np.random.default_rng(8)
    p = population(5_000, seed=9)
    members = rng.binomial(2, p, size=(100, p.size)).astype(float)
    others = rng.binomial(2, p, size=(100, p.size)).astype(float)
    pool = members.mean(axis=0) / 2
    t_members, t_others = homer_statistic(members, pool, p), homer_statistic(others, pool, p)
    assert t_members.mean() > t_others.mean() + 3


# --- selection --------------------------------------------------------------------------------


def greedy(n: int, pool: np.ndarray, ref: np.ndarray, bound: float, alpha: float,
           order: np.ndarray, prior: Spent) -> np.ndarray:
    """The rule written the slow, plain way: try each variant in order, keep it if it fits."""
    t = lr_terms(n, pool, ref)
    budget = separation_budget(bound, alpha)
    total, keep = prior, np.zeros(pool.size, dtype=bool)
    for j in order:
        trial = total + Spent(float(t.separation[j]), float(t.var_null[j]),
                              float(t.var_member[j]), float(t.third_null[j]),
                              float(t.third_member[j]), 1)
        if trial.separation <= budget and power_of(trial, alpha) <= bound:
            total, keep[j] = trial, True
    return keep


frequency = st.one_of(st.sampled_from([0.0, 1.0, 0.5]), st.floats(0, 1))


@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(1, 5_000),
    pairs=st.lists(st.tuples(frequency, frequency), min_size=1, max_size=300),
    bound=st.floats(0.01, 0.9),
    alpha=st.sampled_from([1e-3, 1e-4, 5e-3]),
    shuffle=st.integers(0, 2**32 - 1),
    prior=st.floats(0, 3),
)
def test_selection_never_exceeds_the_bound(
    n: int, pairs: list[tuple[float, float]], bound: float, alpha: float, shuffle: int,
    prior: float,
) -> None:
    pool, ref = np.array(pairs).T
    order = np.random.default_rng(shuffle).permutation(pool.size)
    spent = Spent(prior, prior, prior, variants=1 if prior else 0)
    sel = select_releasable(n, pool, ref, bound, alpha, order, spent=spent)
    assert sel.power <= bound or sel.released.sum() == 0
    if sel.released.any():
        again = lr_power(n, pool[sel.released], ref[sel.released], alpha, spent=spent)
        assert again == pytest.approx(sel.power, rel=1e-9, abs=1e-15)
        assert sel.spent.separation <= separation_budget(bound, alpha) + 1e-12
    assert np.array_equal(sel.released, greedy(n, pool, ref, bound, alpha, order, spent))
    assert set(sel.reasons) == set(np.flatnonzero(~sel.released).tolist())


def test_everything_is_released_when_it_fits() -> None:
    p = population(500, seed=10)
    sel = select_releasable(100_000, group_frequencies(p, 100_000, seed=11), p, 0.1)
    assert sel.released.all() and sel.reasons == {} and sel.power < 0.1


def test_smaller_groups_have_more_withheld() -> None:
    p = population(20_000, seed=12)
    withheld = [
        select_releasable(n, group_frequencies(p, n, seed=n), p, 0.1).withheld
        for n in (100, 500, 2_000, 10_000)
    ]
    assert withheld == sorted(withheld, reverse=True)
    assert withheld[0] > 19_000 and withheld[-1] < 5_000


def test_withheld_variants_say_why() -> None:
    p = population(5_000, seed=13)
    sel = select_releasable(300, group_frequencies(p, 300, seed=14), p, 0.1)
    assert 0 < sel.withheld < 5_000
    assert set(sel.reasons.values()) == {
        "membership-inference power would exceed 0.1 at 0.001"
    }


def test_hits_are_admitted_first_when_p_values_are_given() -> None:
    p = population(5_000, seed=15)
    pool = group_frequencies(p, 300, seed=16)
    p_values = np.random.default_rng(17).random(5_000)
    hits = np.argsort(p_values)[:20]
    by_p = select_releasable(300, pool, p, 0.1, p_values=p_values)
    in_file_order = select_releasable(300, pool, p, 0.1)
    assert by_p.released[hits].all()
    assert not in_file_order.released[hits].all()
    explicit = select_releasable(300, pool, p, 0.1, order=np.argsort(p_values, kind="stable"))
    assert np.array_equal(explicit.released, by_p.released)


def test_untested_variants_come_last_and_ties_keep_file_order() -> None:
    pool, ref = np.full(4, 0.45), np.full(4, 0.2)  # four alike, of which two fit
    assert select_releasable(50, pool, ref, 0.1).released.tolist() == [True, True, False, False]
    p_values = np.array([np.nan, 0.5, 0.5, 0.01])
    sel = select_releasable(50, pool, ref, 0.1, p_values=p_values)
    assert sel.released.tolist() == [False, True, False, True]


# --- repeated releases for the same group ------------------------------------------------------


def test_a_second_release_for_the_same_group_starts_from_what_the_first_spent() -> None:
    p = population(10_000, seed=18)
    pool = group_frequencies(p, 1_000, seed=19)
    ids = [f"rs{i}" for i in range(10_000)]
    first = select_releasable(1_000, pool[:5_000], p[:5_000], 0.1)
    assert first.released.sum() > 1_000
    released_ids = [ids[i] for i in np.flatnonzero(first.released)]
    before = spent_before(released_ids, ids, 1_000, pool, p)
    assert before.separation == pytest.approx(first.spent.separation, rel=1e-9)
    alone = select_releasable(1_000, pool[5_000:], p[5_000:], 0.1)
    after = select_releasable(1_000, pool[5_000:], p[5_000:], 0.1, spent=before)
    assert after.released.sum() < 0.05 * alone.released.sum()
    assert after.power <= 0.1
    assert "released before" in next(iter(after.reasons.values()))


def test_previous_variants_unknown_here_are_charged_at_least_one_over_n() -> None:
    pool, ref = np.array([0.3, 0.4]), np.array([0.3, 0.4])  # no separation of their own
    charged = spent_before(["rs1", "gone1", "gone2"], ["rs1", "rs2"], 200, pool, ref)
    assert charged.variants == 3
    assert charged.separation == pytest.approx(2 / 200)


def test_reference_outside_the_group() -> None:
    rng = np.random.default_rng(20)
    g = rng.binomial(2, 0.3, size=(1_000, 5)).astype(float)
    outside = reference_outside(g.mean(axis=0) / 2, 1_000, g[:100].mean(axis=0) / 2, 100)
    assert outside == pytest.approx(g[100:].mean(axis=0) / 2, abs=1e-12)


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: lr_power(0, [0.1], [0.1]), "n is 0"),
        (lambda: lr_power(2.5, [0.1], [0.1]), "n is 2.5"),  # type: ignore[arg-type]
        (lambda: lr_power(10, [1.2], [0.1]), "p_pool has 1 values outside"),
        (lambda: lr_power(10, [0.2], [-0.1]), "p_ref has 1 values outside"),
        (lambda: lr_power(10, [np.nan], [0.1]), "outside \\[0, 1\\]"),
        (lambda: lr_power(10, [0.1, 0.2], [0.1]), "align both"),
        (lambda: lr_power(10, [0.1], [0.1], alpha=0), "alpha is 0"),
        (lambda: select_releasable(10, [0.1], [0.1], 0), "bound is 0"),
        (lambda: select_releasable(10, [0.1], [0.1], 1.0), "bound is 1.0"),
        (lambda: select_releasable(10, [0.1], [0.1], 1e-4), "not above alpha"),
        (lambda: select_releasable(10, [0.1, 0.2], [0.1, 0.2], 0.1, order=[0, 0]), "permutation"),
        (lambda: select_releasable(10, [0.1], [0.1], 0.1, order=[0], p_values=[0.1]), "either"),
        (lambda: select_releasable(10, [0.1], [0.1], 0.1, p_values=[0.1, 0.2]), "one p-value"),
        (lambda: lr_statistic([[0, 1]], [0.1], [0.1]), "people × 1 variants"),
        (lambda: lr_statistic([[3]], [0.1], [0.1]), "dosages in \\[0, 2\\]"),
        (lambda: spent_before(["a"], ["a", "b"], 10, [0.1], [0.1]), "one id per variant"),
        (lambda: reference_outside([0.1], 10, [0.1], 10), "larger than the group"),
    ],
)
def test_bad_input_is_refused_with_what_to_do(call: object, message: str) -> None:
    with pytest.raises(MembershipInputError, match=message) as raised:
        call()  # type: ignore[operator]
    assert isinstance(raised.value, ValueError)
