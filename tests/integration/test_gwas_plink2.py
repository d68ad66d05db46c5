"""The GWAS engine against the real plink2 --glm (/usr/bin/plink2, v2.00a3.5), variant by variant.

A PLINK 1 file set is written with bed-reader (two populations, rare and common variants,
missing calls, a monomorphic variant, a variant identical to a covariate) and plink2 runs on
it: linear regression on three traits with unstandardised covariates (some missing), and
logistic regression without and with Firth fallback. ``omit-ref`` makes plink2's A1 the ALT
allele, which is what our dosages count.

How close. plink2 prints 6 significant digits, so agreement is checked to what it prints:
|ours − plink2| ≤ half a unit in its 6th digit (relative ≤ 5e-6 of the leading digit), plus
1e-8 relative for plink2's own printing, which rounds ties a hair off. Linear regression must
meet that for every variant. plink2's logistic and Firth regressions run in single precision
(ours in double), so there beta may also differ by 3e-5 × SE and SE by 2e-5 × SE (logistic;
5e-6 × SE and 7e-6 × SE measured), or both by 1e-3 × SE (Firth, whose single-precision
iteration stops short of the optimum that ours reaches; 3.6e-4 × SE measured).

plink2 a3.5 has a logistic bug (fixed in 2.0.0-a.6, "--glm logistic/Firth trailing-zero
bugfix", 9 Oct 2024): a variant with missing calls right after one without is fitted with a
few phantom samples when its sample count is not a multiple of 8. The case/control data here
keeps every variant's sample count a multiple of 8 (400 samples, missing calls in eights), so
the comparison is with what plink2 means to compute; tests/unit compares ours with statsmodels
on variants with any number of missing calls.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from bed_reader import open_bed, to_bed
from scipy import special

from strongroom.genomics.gwas import linear_gwas
from strongroom.genomics.logistic import logistic_gwas

PLINK2 = "/usr/bin/plink2"
N, M = 400, 240
RARE = 24  # the first variants are rare: no carrier among the cases sends them to Firth
MONOMORPHIC, LIKE_COVARIATE = 30, 31

pytestmark = pytest.mark.skipif(not Path(PLINK2).exists(), reason="needs /usr/bin/plink2")


def _tsv(path: Path, header: list[str], ids: list[str], values: np.ndarray) -> None:
    def cell(v: float) -> str:
        return "NA" if np.isnan(v) else repr(float(v))  # repr: plink2 parses the same double
    lines = ["\t".join(["#FID", "IID", *header])]
    lines += ["\t".join([i, i, *map(cell, row)]) for i, row in zip(ids, values, strict=True)]
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    out = tmp_path_factory.mktemp("gwas_plink2")
    rng = np.random.default_rng(2024)
    pop = rng.integers(0, 2, N)
    freq = rng.uniform(0.05, 0.5, M)
    freq[:RARE] = rng.uniform(0.002, 0.01, RARE)
    shift = rng.normal(0, 0.06, M)
    shift[:RARE] = 0.0
    p = np.clip(freq + np.where(pop[:, None] == 1, shift, -shift), 0.001, 0.999)
    g = rng.binomial(2, p).astype(np.float32)
    g[:, MONOMORPHIC] = 0.0
    for j in rng.choice(np.arange(40, M), 70, replace=False):
        g[rng.choice(N, 8 * int(rng.integers(1, 4)), replace=False), j] = np.nan
    ids = [f"s{i}" for i in range(N)]
    chrom = np.repeat(["1", "2", "3"], M // 3)
    pos = np.concatenate([np.sort(rng.choice(10**7, M // 3, replace=False)) + 1
                          for _ in range(3)])
    to_bed(out / "study.bed", g, properties={
        "fid": ids, "iid": ids, "chromosome": chrom, "bp_position": pos,
        "sid": [f"v{j}" for j in range(M)], "allele_1": ["A"] * M, "allele_2": ["G"] * M})
    # dyadic covariate values: exact in plink2's float32 logistic regression too
    age = np.round(rng.uniform(40, 70, N) * 4) / 4
    sex = rng.integers(0, 2, N).astype(float)
    pc1 = np.round((rng.normal(size=N) + 1.5 * pop) * 1024) / 1024
    carrier = g[:, LIKE_COVARIATE].astype(float)
    covariates = np.column_stack([age, sex, pc1, carrier])
    gaps = covariates.copy()  # the linear runs: a few samples lack a covariate
    gaps[rng.choice(N, 6, replace=False), 0] = np.nan
    gaps[rng.choice(N, 3, replace=False), 2] = np.nan
    gz = np.nan_to_num(g)
    y1 = 0.4 * gz[:, 40] + 0.02 * age + 0.5 * sex + 0.3 * pop + rng.normal(size=N)
    y2 = 0.3 * gz[:, 41] + 2.0 * rng.normal(size=N) + 100.0
    y2[rng.choice(N, 40, replace=False)] = np.nan
    y3 = rng.normal(size=N)
    traits = np.round(np.column_stack([y1, y2, y3]) * 1e6) / 1e6
    lin = -1.0 + 0.8 * gz[:, 50] + 0.02 * (age - 55) + 0.4 * pop
    b1 = (rng.random(N) < special.expit(lin)).astype(float)
    b2 = (rng.random(N) < 0.2).astype(float)
    b2[gz[:, 5] > 0] = 1.0  # every carrier a case: no control carries it
    cc = np.column_stack([b1, b2])
    names = ["age", "sex", "pc1", "carrier"]
    _tsv(out / "covar_gaps.tsv", names, ids, gaps)
    _tsv(out / "covar.tsv", names, ids, covariates)
    _tsv(out / "qt.tsv", ["y1", "y2", "y3"], ids, traits)
    _tsv(out / "cc.tsv", ["b1", "b2"], ids, cc + 1.0)  # plink's 1 control, 2 case
    return {"dir": out, "traits": traits, "cc": cc, "covariates": covariates, "gaps": gaps,
            "names": names}


def _plink2(out: Path, pheno: str, covar: str, *glm: str) -> None:
    cmd = [PLINK2, "--bfile", str(out / "study"), "--pheno", str(out / pheno), "--covar",
           str(out / covar), "--glm", "omit-ref", "hide-covar", *glm, "--threads", "1",
           "--out", str(out / glm[0])]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout[-2000:]


def _plink2_table(path: Path) -> pl.DataFrame:
    return pl.read_csv(path, separator="\t", null_values="NA", infer_schema_length=None)


def _chunks(out: Path) -> list[tuple[int, np.ndarray]]:
    with open_bed(out / "study.bed") as bed:
        return [(s, bed.read(index=np.s_[:, s:s + 64], dtype="float32"))
                for s in range(0, M, 64)]


def _printed_unit(theirs: np.ndarray) -> np.ndarray:
    """Half a unit in the 6th significant digit plink2 prints, plus its printing's slack."""
    size = np.abs(theirs)
    magnitude = np.floor(np.log10(np.where(size > 0, size, 1.0)))
    return np.where(size > 0, 0.5 * 10.0 ** (magnitude - 5) + 1e-8 * size, 0.0)


def _assert_close(ours: np.ndarray, theirs: np.ndarray, slack: np.ndarray | float,
                  what: str) -> None:
    assert np.array_equal(np.isnan(ours), np.isnan(theirs)), f"{what}: NA in different rows"
    ok = ~np.isnan(theirs)
    gap = np.abs(ours[ok] - theirs[ok])
    limit = _printed_unit(theirs[ok]) + (slack[ok] if isinstance(slack, np.ndarray) else slack)
    worst = np.flatnonzero(gap > limit)
    assert worst.size == 0, (f"{what}: {worst.size} rows apart, e.g. ours {ours[ok][worst[0]]!r}"
                             f" vs plink2 {theirs[ok][worst[0]]!r}")


def test_linear_regression_matches_plink2_for_every_variant(study):
    out = study["dir"]
    _plink2(out, "qt.tsv", "covar_gaps.tsv", "cols=+a1count,+a1freq,+beta")
    ours = linear_gwas(_chunks(out), study["traits"], study["gaps"],
                       trait_names=["y1", "y2", "y3"], covariate_names=study["names"])
    for trait in ("y1", "y2", "y3"):
        theirs = _plink2_table(out / f"cols=+a1count,+a1freq,+beta.{trait}.glm.linear")
        mine = ours.filter(pl.col("trait") == trait)
        assert theirs.height == mine.height == M
        assert mine["error"].fill_null(".").to_list() == theirs["ERRCODE"].to_list()
        assert mine["n"].to_list() == theirs["OBS_CT"].to_list()
        assert mine["alt_count"].to_list() == theirs["A1_CT"].cast(pl.Float64).to_list()
        for col, theirs_col in (("beta", "BETA"), ("se", "SE"), ("stat", "T_STAT"),
                                ("p", "P"), ("alt_freq", "A1_FREQ")):
            _assert_close(mine[col].fill_null(np.nan).to_numpy(),
                          theirs[theirs_col].fill_null(np.nan).to_numpy().astype(float),
                          0.0, f"{trait} {col}")
    errors = ours.filter(pl.col("trait") == "y1")["error"].to_list()
    assert errors[MONOMORPHIC] == "CONST_OMITTED_ALLELE"
    assert errors[LIKE_COVARIATE] == "CORR_TOO_HIGH"
    assert ours.filter(pl.col("error").is_null()).height == 3 * (M - 2)


@pytest.mark.parametrize("mode", ["no-firth", "firth-fallback"])
def test_logistic_regression_matches_plink2_for_every_variant(study, mode):
    out = study["dir"]
    cols = "cols=+a1count,+a1countcc,+beta" + (",+firth" if mode == "firth-fallback" else "")
    _plink2(out, "cc.tsv", "covar.tsv", mode, cols)
    ours = logistic_gwas(_chunks(out), study["cc"], study["covariates"],
                         trait_names=["b1", "b2"], covariate_names=study["names"],
                         firth_fallback=mode == "firth-fallback")
    suffix = "glm.logistic.hybrid" if mode == "firth-fallback" else "glm.logistic"
    firth_rows = 0
    for trait in ("b1", "b2"):
        theirs = _plink2_table(out / f"{mode}.{trait}.{suffix}")
        mine = ours.filter(pl.col("trait") == trait)
        assert theirs.height == mine.height == M
        # plink2 names the allele after SEPARATION; ours says SEPARATION alone
        assert mine["error"].fill_null(".").to_list() == [
            e.split(",")[0] for e in theirs["ERRCODE"].to_list()]
        assert mine["n"].to_list() == theirs["OBS_CT"].to_list()
        assert mine["alt_count_cases"].to_list() == theirs["A1_CASE_CT"].cast(
            pl.Float64).to_list()
        firth = (mine["test"] == "firth").to_numpy()
        if mode == "firth-fallback":
            assert firth.tolist() == (theirs["FIRTH?"] == "Y").to_list()
            firth_rows += int(firth.sum())
        se = theirs["SE"].fill_null(np.nan).to_numpy().astype(float)
        beta = theirs["BETA"].fill_null(np.nan).to_numpy().astype(float)
        _assert_close(mine["beta"].fill_null(np.nan).to_numpy(), beta,
                      np.where(firth, 1e-3, 3e-5) * se, f"{trait} beta")
        _assert_close(mine["se"].fill_null(np.nan).to_numpy(), se,
                      np.where(firth, 1e-3, 2e-5) * se, f"{trait} se")
    if mode == "firth-fallback":
        assert firth_rows >= 10  # the rare variants and the one only cases carry
