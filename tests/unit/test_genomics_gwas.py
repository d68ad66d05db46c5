"""The GWAS engine against independent fits: least squares and maximum likelihood from
statsmodels on each variant's own samples, Firth's penalised likelihood maximised by scipy,
principal components from a full SVD. (Agreement with plink2 itself is in
tests/integration/test_gwas_plink2.py.)"""

from __future__ import annotations

import struct

import numpy as np
import polars as pl
import pytest
import statsmodels.api as sm
from polars.testing import assert_frame_equal
from scipy import optimize, special

from strongroom.genomics import logistic, pca
from strongroom.genomics.gwas import (
    GwasInputError,
    genomic_inflation,
    linear_gwas,
)
from strongroom.genomics.logistic import logistic_gwas
from strongroom.genomics.pca import genotype_pcs
from strongroom.genomics.plots import manhattan_png, qq_png

N, M = 240, 40


def _genotypes(rng: np.random.Generator, n: int = N, m: int = M) -> np.ndarray:
    freq = rng.uniform(0.05, 0.5, m)
    g = rng.binomial(2, freq, (n, m)).astype(np.float32)
    for j in range(0, m, 3):  # a third of the variants lack a few calls
        g[rng.choice(n, int(rng.integers(1, 12)), replace=False), j] = np.nan
    return g


def _chunks(g: np.ndarray, size: int) -> list[tuple[int, np.ndarray]]:
    return [(s, g[:, s:s + size]) for s in range(0, g.shape[1], size)]


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    g = _genotypes(rng)
    age = rng.uniform(40, 70, N)
    sex = rng.integers(0, 2, N).astype(float)
    pc = rng.normal(size=N)
    cov = np.column_stack([age, sex, pc])
    cov[rng.choice(N, 5, replace=False), 0] = np.nan  # missing covariate: sample dropped
    gz = np.nan_to_num(g)
    y1 = 0.5 * gz[:, 4] + 0.03 * age + 0.4 * sex + rng.normal(size=N) + 160.0
    y2 = rng.normal(size=N) * 2.0
    y2[rng.choice(N, 30, replace=False)] = np.nan  # its own samples
    lin = -0.7 + 0.9 * gz[:, 7] + 0.03 * (age - 55) + 0.5 * pc
    case = (rng.random(N) < special.expit(lin)).astype(float)
    return {"g": g, "cov": cov, "y": np.column_stack([y1, y2]), "case": case}


def _own_samples(*columns: np.ndarray) -> np.ndarray:
    return np.all([np.isfinite(c).all(axis=1) if c.ndim == 2 else np.isfinite(c)
                   for c in columns], axis=0)


def test_linear_is_least_squares_on_each_variants_own_samples(data):
    res = linear_gwas(_chunks(data["g"], 16), data["y"], data["cov"], trait_names=["y1", "y2"])
    assert res.height == M * 2
    assert res["trait"].to_list()[:4] == ["y1", "y2", "y1", "y2"]
    for row in res.iter_rows(named=True):
        j, t = row["variant"], int(row["trait"][1]) - 1
        keep = _own_samples(data["y"][:, t], data["cov"], data["g"][:, j])
        x = np.column_stack([np.ones(keep.sum()), data["g"][keep, j], data["cov"][keep]])
        fit = sm.OLS(data["y"][keep, t], x).fit()
        assert row["n"] == keep.sum()
        assert row["alt_count"] == data["g"][keep, j].sum()
        # the covariate projection runs in float32: ~1e-9 here, ≲1e-7 when covariates
        # explain half the genotype's variance
        assert row["beta"] == pytest.approx(fit.params[1], rel=1e-7)
        assert row["se"] == pytest.approx(fit.bse[1], rel=1e-7)
        assert row["stat"] == pytest.approx(fit.tvalues[1], rel=1e-7)
        assert row["p"] == pytest.approx(fit.pvalues[1], rel=1e-6)
        assert row["test"] == "linear" and row["error"] is None


def test_results_do_not_depend_on_the_chunks_or_threads(data):
    one = linear_gwas(_chunks(data["g"], M), data["y"], data["cov"])
    many = linear_gwas(reversed(_chunks(data["g"], 7)), data["y"], data["cov"], threads=3)
    # BLAS may sum the float32 projections in another order for another chunk width (and
    # another BLAS build: 1.3e-8 apart on one), within the float32 projection's own 1e-7
    assert_frame_equal(one, many, rel_tol=1e-7, abs_tol=1e-12)
    one = logistic_gwas(_chunks(data["g"], M), data["case"], data["cov"])
    many = logistic_gwas(_chunks(data["g"], 9), data["case"], data["cov"], threads=2)
    assert_frame_equal(one, many, rel_tol=1e-9, abs_tol=1e-12)


def test_variants_plink2_refuses_are_reported_with_its_codes(data):
    g = data["g"][:, :4].copy()
    g[:, 0] = 1.0  # constant
    cov = np.column_stack([data["cov"], np.nan_to_num(data["g"][:, 9])])
    g[:, 1] = cov[:, 3]  # the same as a covariate
    noise = np.random.default_rng(1).normal(0, 0.05, N)
    g[:, 2] = cov[:, 3] + noise  # nearly so: correlation 0.997, VIF above 50
    res = linear_gwas([(0, g)], data["y"][:, 0], cov)
    assert res["error"].to_list() == ["CONST_OMITTED_ALLELE", "CORR_TOO_HIGH", "VIF_TOO_HIGH",
                                      None]
    assert res["beta"].null_count() == 3 and res["se"][3] is not None


def test_a_constant_covariate_is_dropped_as_plink2_does(data):
    base = linear_gwas([(0, data["g"])], data["y"], data["cov"])
    padded = linear_gwas([(0, data["g"])], data["y"],
                         np.column_stack([data["cov"], np.full(N, 3.0)]))
    assert_frame_equal(base, padded, rel_tol=1e-10)


def test_a_covariate_only_one_sample_sets_drops_that_sample_as_plink2_does(data):
    one = int(np.flatnonzero(_own_samples(data["y"], data["cov"]))[0])
    lone = np.zeros(N)
    lone[one] = 1.0
    res = linear_gwas([(0, data["g"])], data["y"], np.column_stack([data["cov"], lone]))
    rest = np.arange(N) != one
    without = linear_gwas([(0, data["g"][rest])], data["y"][rest], data["cov"][rest])
    assert_frame_equal(res, without, rel_tol=1e-8)
    assert res["n"][0] < linear_gwas([(0, data["g"])], data["y"], data["cov"])["n"][0]


def test_collinear_covariates_are_refused_by_name(data):
    cov = np.column_stack([data["cov"], 2.0 * data["cov"][:, 0] + 1.0])
    with pytest.raises(GwasInputError, match="'age' and 'age2'"):
        linear_gwas([(0, data["g"])], data["y"], cov,
                    covariate_names=["age", "sex", "pc", "age2"])


@pytest.mark.parametrize(("chunk", "message"), [
    ((0, np.zeros((N, 3), dtype=np.float64)), "float32"),
    ((0, np.zeros((N - 1, 3), dtype=np.float32)), f"with {N} rows"),
])
def test_bad_chunks_are_refused_saying_why(data, chunk, message):
    with pytest.raises(GwasInputError, match=message):
        linear_gwas([chunk], data["y"], data["cov"])


def test_logistic_is_maximum_likelihood_on_each_variants_own_samples(data):
    res = logistic_gwas(_chunks(data["g"], 16), data["case"], data["cov"])
    assert set(res["test"]) == {"logistic"}
    for row in res.iter_rows(named=True):
        j = row["variant"]
        keep = _own_samples(data["case"], data["cov"], data["g"][:, j])
        x = np.column_stack([np.ones(keep.sum()), data["g"][keep, j], data["cov"][keep]])
        fit = sm.Logit(data["case"][keep], x).fit(disp=0, tol=1e-12)
        cases = data["case"][keep] > 0
        assert row["n"] == keep.sum() and row["n_cases"] == cases.sum()
        assert row["alt_count_cases"] == data["g"][keep, j][cases].sum()
        assert row["beta"] == pytest.approx(fit.params[1], rel=1e-6, abs=1e-8)
        # plink2 takes the standard error from the Hessian where its last step started
        assert row["se"] == pytest.approx(fit.bse[1], rel=2e-4)


def _firth_by_optimiser(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    def minus(beta: np.ndarray) -> float:
        eta = x @ beta
        w = special.expit(eta) * special.expit(-eta)
        loglik = np.sum(np.where(y > 0, special.log_expit(eta), special.log_expit(-eta)))
        return -(loglik + 0.5 * np.linalg.slogdet(x.T @ (x * w[:, None]))[1])
    beta = optimize.minimize(minus, np.zeros(x.shape[1]), method="BFGS",
                             options={"gtol": 1e-10}).x
    w = special.expit(x @ beta) * special.expit(-(x @ beta))
    return beta[1], float(np.sqrt(np.linalg.inv(x.T @ (x * w[:, None]))[1, 1]))


def test_firth_takes_over_when_no_case_carries_the_allele(data):
    g = data["g"][:, :3].copy()
    controls = np.flatnonzero(data["case"] == 0)
    g[:, 0] = 0.0
    g[controls[:4], 0] = 1.0  # a rare allele carried by controls only
    res = logistic_gwas([(0, g)], data["case"], data["cov"])
    assert res["test"].to_list() == ["firth", "logistic", "logistic"]
    keep = _own_samples(data["case"], data["cov"])
    x = np.column_stack([np.ones(keep.sum()), g[keep, 0], data["cov"][keep]])
    beta, se = _firth_by_optimiser(x, data["case"][keep])
    assert res["beta"][0] == pytest.approx(beta, rel=1e-4)
    assert res["se"][0] == pytest.approx(se, rel=1e-4)
    assert (res["mac_cases"][0], res["mac_controls"][0]) == (0.0, 4.0)
    plain = logistic_gwas([(0, g)], data["case"], data["cov"], firth_fallback=False)
    assert plain["error"][0] == "SEPARATION" and plain["beta"][0] is None


def test_logistic_fits_do_not_depend_on_how_samples_and_variants_are_blocked(
        data, monkeypatch: pytest.MonkeyPatch):
    """At large n the Newton batch shrinks (its dosages a thread's memory) and the covariates'
    products are made a block of rows at a time: here both at this small n, Firth included."""
    g = data["g"].copy()
    controls = np.flatnonzero(data["case"] == 0)
    g[:, 0] = 0.0
    g[controls[:4], 0] = 1.0  # Firth's variant
    whole = logistic_gwas([(0, g)], data["case"], data["cov"])
    monkeypatch.setattr(logistic, "_NEWTON_CELLS", 8 * N)  # batches of 8
    monkeypatch.setattr(logistic, "_CROSS_ROWS", 64)  # blocks of 64 rows
    blocked = logistic_gwas([(0, g)], data["case"], data["cov"])
    assert blocked["test"][0] == "firth" and (blocked["test"][1:] == "logistic").all()
    assert_frame_equal(whole, blocked, rel_tol=1e-9, abs_tol=1e-12)


def test_a_covariate_that_separates_cases_sends_every_variant_to_firth(data):
    cov = np.column_stack([data["cov"], data["case"] * 10.0 + np.arange(N) / N])
    res = logistic_gwas([(0, data["g"][:, :5])], data["case"], cov)
    assert set(res["test"]) == {"firth"} and res["beta"].null_count() == 0
    with pytest.raises(GwasInputError, match="'sep' separates the cases"):
        logistic_gwas([(0, data["g"][:, :5])], data["case"], cov, firth_fallback=False,
                      covariate_names=["age", "sex", "pc", "sep"])


def test_case_control_traits_must_be_coded_0_1(data):
    with pytest.raises(GwasInputError, match="1 \\(case\\), 0 \\(control\\)"):
        logistic_gwas([(0, data["g"])], data["case"] + 1.0, data["cov"])


def test_genomic_inflation_is_the_median_chi2_over_its_null_median():
    chi2 = np.array([1.0, 2.0, 3.0]) * 0.4549364231195724
    assert genomic_inflation(special.chdtrc(1, chi2)) == pytest.approx(2.0, rel=1e-9)
    p = np.random.default_rng(0).uniform(size=20_000)
    assert genomic_inflation(p) == pytest.approx(1.0, abs=0.05)
    with pytest.raises(GwasInputError):
        genomic_inflation([np.nan])


def test_principal_components_streamed_in_a_few_passes(monkeypatch: pytest.MonkeyPatch):
    rng = np.random.default_rng(5)
    n, m = 300, 400
    pop = np.repeat([0, 1, 2], n // 3)
    base = rng.uniform(0.1, 0.5, m)
    freq = np.clip(base + rng.normal(0, 0.15, (3, m)), 0.01, 0.99)[pop]
    g = rng.binomial(2, freq).astype(np.float32)
    g[:, :50] = rng.binomial(2, 0.02, (n, 50))  # rare: below the MAF cut
    g[rng.random((n, m)) < 0.01] = np.nan
    variants = pl.DataFrame({"chrom": ["1"] * m, "pos": np.arange(m, dtype=np.int64) * 1000})
    passes = []

    def chunks():
        passes.append(1)
        return _chunks(g, 64)

    exact = genotype_pcs(chunks, 2, variants=variants, min_spacing_bp=2000, max_r2=1.0)
    assert len(passes) == 1  # the kept markers fit in memory: one pass, exact components
    monkeypatch.setattr(pca, "EXACT_BYTES", 0)  # too many for exact components
    held = genotype_pcs(chunks, 2, variants=variants, min_spacing_bp=2000, max_r2=1.0)
    assert len(passes) == 2  # the randomised SVD's passes over the dosages held from the first
    monkeypatch.setattr(pca, "HOLD_BYTES", 0)  # a cohort whose markers do not fit at all
    pcs = genotype_pcs(chunks, 2, variants=variants, min_spacing_bp=2000, max_r2=1.0)
    assert len(passes) == 2 + 2 + 2 * 2  # two, and two per power iteration
    assert np.allclose(held.scores, pcs.scores)  # the same passes, from memory or read again
    genotype_pcs(chunks, 2, variants=variants, min_spacing_bp=2000, power_iterations=0,
                 max_r2=1.0)
    assert len(passes) == 10
    p = np.nanmean(g, axis=0) / 2
    common = np.flatnonzero(np.minimum(p, 1 - p) >= 0.05)
    thinned = [common[0]]
    for j in common[1:]:
        if j - thinned[-1] >= 2:
            thinned.append(j)
    assert pcs.variants.tolist() == thinned == exact.variants.tolist()
    x = (g[:, thinned] - 2 * p[thinned]) / np.sqrt(2 * p[thinned] * (1 - p[thinned]))
    u, s, _ = np.linalg.svd(np.nan_to_num(x), full_matrices=False)
    for k in range(2):
        assert abs(np.corrcoef(exact.scores[:, k], u[:, k])[0, 1]) > 0.999999
        np.testing.assert_allclose(exact.eigenvalues[k], s[k] ** 2 / len(thinned), rtol=1e-6)
    for k in range(2):
        assert abs(np.corrcoef(pcs.scores[:, k], u[:, k])[0, 1]) > 0.999
    assert pcs.eigenvalues == pytest.approx(s[:2] ** 2 / len(thinned), rel=1e-3)
    assert pcs.scores.std(axis=0) == pytest.approx([1.0, 1.0])
    labels = np.eye(3)[pop]
    fit = np.linalg.lstsq(np.column_stack([np.ones(n), pcs.scores]), labels, rcond=None)[0]
    assert np.abs(np.column_stack([np.ones(n), pcs.scores]) @ fit - labels).max() < 0.5


def _png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def test_plots_are_the_same_png_bytes_every_time(data):
    res = linear_gwas([(0, data["g"])], data["y"], data["cov"], trait_names=["y1", "y2"])
    variants = pl.DataFrame({"chrom": ["1"] * 20 + ["2"] * 20,
                             "pos": np.tile(np.arange(20, dtype=np.int64) * 5000 + 1, 2)})
    manhattan = manhattan_png(res, variants, trait="y1", width=8, height=3, dpi=50)
    assert manhattan == manhattan_png(res, variants, trait="y1", width=8, height=3, dpi=50)
    assert _png_size(manhattan) == (400, 150)
    qq = qq_png(res, trait="y2", size=4, dpi=50)
    assert qq == qq_png(res, trait="y2", size=4, dpi=50) and _png_size(qq) == (200, 200)
    assert qq != qq_png(res, trait="y1", size=4, dpi=50)
    with pytest.raises(GwasInputError, match="say which"):
        qq_png(res)


def test_a_strong_hit_s_p_value_is_never_zero() -> None:
    """p underflows past 1e-308; −log10 p is still given, and matches the normal tail's
    asymptotic series (Mills' ratio) where the float p is gone."""
    from strongroom.genomics.release import p_values

    z = np.array([0.0, 1.959964, 10.0, 37.0, 40.0, 60.0])
    p, neg = p_values(z, None)
    np.testing.assert_allclose(p[:3], [1.0, 0.05, 1.523971e-23], rtol=1e-5)
    assert np.isnan(p[-2:]).all() and np.isfinite(neg).all()
    big = z[3:]
    series = (-big**2 / 2 - np.log(big * np.sqrt(2 * np.pi))
              + np.log(1 - 1 / big**2 + 3 / big**4))
    np.testing.assert_allclose(neg[3:], -(np.log(2) + series) / np.log(10), rtol=1e-6)
    # a t statistic with few degrees of freedom has heavier tails
    _, neg_t = p_values(np.array([40.0]), 30)
    assert neg_t[0] < neg[4] and np.isfinite(neg_t[0])


def test_markers_in_linkage_disequilibrium_are_pruned_before_the_components():
    """A block of copies of one marker is one haplotype's worth: kept whole it would be a
    leading component of its own (and correct for nothing); pruned, one of it is left."""
    rng = np.random.default_rng(8)
    n = 400
    independent = rng.binomial(2, rng.uniform(0.2, 0.5, 60), (n, 60)).astype(np.float32)
    block = np.repeat(rng.binomial(2, 0.3, (n, 1)).astype(np.float32), 30, axis=1)
    g = np.hstack([independent, block])
    kept = genotype_pcs(lambda: _chunks(g, 128), 2).variants
    assert np.isin(np.arange(60), kept).sum() >= 55  # independent markers stay
    assert np.isin(np.arange(60, 90), kept).sum() == 1  # the block is one marker
    whole = genotype_pcs(lambda: _chunks(g, 128), 2, max_r2=1.0)
    assert whole.eigenvalues[0] > 5 * genotype_pcs(lambda: _chunks(g, 128), 2).eigenvalues[0]


def test_held_markers_multiply_as_their_standardised_genotypes() -> None:
    """The randomised SVD's passes multiply held int8 dosages as the standardised genotypes
    they stand for (a missing call 0) without making them: the same products as the matrix
    made whole, with missing calls and without."""
    rng = np.random.default_rng(11)
    for missing in (0.0, 0.05):
        kept = rng.integers(0, 3, (500, 37)).astype(np.int8)
        kept[rng.random(kept.shape) < missing] = -1
        called = kept >= 0
        p = np.where(called, kept, 0).sum(axis=0) / (2 * called.sum(axis=0))
        mean, inv_sd = 2 * p, 1 / np.sqrt(2 * p * (1 - p))
        whole = np.where(called, (kept - mean) * inv_sd, 0.0)
        held = pca._Held(kept, mean, inv_sd)
        b, y = rng.standard_normal((37, 6)), rng.standard_normal((500, 6))
        np.testing.assert_allclose(held.times(b), whole @ b, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(held.t_times(y), whole.T @ y, rtol=1e-12, atol=1e-12)


def test_imputed_dosages_are_held_as_their_nearest_hard_calls() -> None:
    """Components from imputed dosages a little off their hard calls are those of the hard
    calls (each held rounded to the nearest, not cast down: 1.9 is a 2)."""
    rng = np.random.default_rng(4)
    n, m = 240, 120
    pop = np.repeat([0, 1], n // 2)
    freq = np.clip(rng.uniform(0.2, 0.5, m) + rng.normal(0, 0.2, (2, m)), 0.05, 0.95)[pop]
    calls = rng.binomial(2, freq).astype(np.float32)
    blur = np.where(calls == 2, -0.1, np.where(calls == 0, 0.1, 0.1 * rng.choice([-1, 1],
                                                                             calls.shape)))
    dosages = (calls + blur).astype(np.float32)
    hard = genotype_pcs(lambda: _chunks(calls, 64), 1, max_r2=1.0)
    imputed = genotype_pcs(lambda: _chunks(dosages, 64), 1, max_r2=1.0)
    # the two populations' axis, from the same calls (the means differ by the blur alone)
    assert abs(np.corrcoef(hard.scores[:, 0], imputed.scores[:, 0])[0, 1]) > 0.999


def test_markers_too_many_to_hold_are_read_again_as_hard_calls(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The components of imputed dosages are the same whether the kept markers are held
    between passes or read again each pass (a cohort too large to hold them)."""
    rng = np.random.default_rng(5)
    n, m = 300, 160
    pop = np.repeat([0, 1, 2], n // 3)
    freq = np.clip(rng.uniform(0.2, 0.5, m) + rng.normal(0, 0.2, (3, m)), 0.05, 0.95)[pop]
    dosages = np.clip(rng.binomial(2, freq) + rng.uniform(-0.45, 0.45, (n, m)), 0, 2
                      ).astype(np.float32)
    dosages[rng.random((n, m)) < 0.01] = np.nan
    options = {"max_r2": 1.0, "oversample": 20, "power_iterations": 6}
    monkeypatch.setattr(pca, "EXACT_BYTES", 0)  # the randomised SVD on both paths
    held = genotype_pcs(lambda: _chunks(dosages, 64), 2, **options)
    monkeypatch.setattr(pca, "HOLD_BYTES", 0)
    streamed = genotype_pcs(lambda: _chunks(dosages, 64), 2, **options)
    np.testing.assert_array_equal(held.variants, streamed.variants)
    np.testing.assert_allclose(np.abs(held.scores), np.abs(streamed.scores), atol=1e-6)
