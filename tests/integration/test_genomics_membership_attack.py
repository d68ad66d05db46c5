"""Red team: Sankararaman's LR membership attack (and Homer's) against released group frequencies.

A group of 1,000 people is genotyped at 20,000 independent variants (realistic, neutral-like MAF
spectrum) and written as a real PLINK 1 file set; its released frequencies come from the real
plink2 --freq, as a researcher's would. The attacker holds a candidate's genotype, the
released frequencies and the strongest reference there is, the population's true frequencies;
it sets its threshold on genuine non-members for a false-positive rate of 1e-3. The test alone
knows who is a member.

(a) All 20,000 variants released: the attack finds most members.
(b) Only what Strongroom lets out (bound 0.1 at 1e-3, measured as `genomics.release` does:
    against the group's expected departure from the population, `attackers_reference`): its
    power is at most the bound up to sampling error, and Homer's distance test does no better.
"""

from __future__ import annotations

import math
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
from bed_reader import to_bed
from scipy.stats import norm

from strongroom.genomics.membership import homer_statistic, lr_statistic, select_releasable
from strongroom.genomics.release import attackers_reference

N_GROUP, M, BOUND, ALPHA = 1_000, 20_000, 0.1, 1e-3
PLINK2 = "/usr/bin/plink2"


def genotypes(rng: np.random.Generator, p: np.ndarray, people: int) -> np.ndarray:
    """ALT counts of people in Hardy–Weinberg equilibrium (two allele draws each)."""
    p32 = p.astype(np.float32)
    first = rng.random((people, p.size), dtype=np.float32) < p32
    second = rng.random((people, p.size), dtype=np.float32) < p32
    return first.astype(np.int8) + second


def non_members(
    rng: np.random.Generator, p: np.ndarray, people: int, chunk: int = 2_000
) -> Iterator[np.ndarray]:
    for start in range(0, people, chunk):
        yield genotypes(rng, p, min(chunk, people - start))


def released_frequencies(tmp: Path, group: np.ndarray, ids: list[str]) -> np.ndarray:
    """The group's ALT frequencies as plink2 --freq reports them from a real .bed file set."""
    rng = np.random.default_rng(0)
    alleles = np.array(list("ACGT"))
    ref = rng.integers(0, 4, M)
    alt = (ref + rng.integers(1, 4, M)) % 4
    to_bed(
        tmp / "group.bed",
        group,
        properties={
            "iid": [f"p{i}" for i in range(N_GROUP)],
            "fid": [f"p{i}" for i in range(N_GROUP)],
            "sid": ids,
            "chromosome": ["1"] * M,
            "bp_position": np.arange(1, M + 1) * 1_000,
            "allele_1": alleles[alt].tolist(),  # allele 1 is ALT, the counted allele
            "allele_2": alleles[ref].tolist(),
        },
        num_threads=1,
    )
    subprocess.run(
        [PLINK2, "--bfile", str(tmp / "group"), "--freq", "--threads", "1", "--memory", "1024",
         "--out", str(tmp / "group")],
        check=True, capture_output=True,
    )
    table = pl.read_csv(tmp / "group.afreq", separator="\t")
    assert table["ID"].to_list() == ids
    assert table["ALT"].to_list() == alleles[alt].tolist()
    return table["ALT_FREQS"].to_numpy()


def attack(
    statistic: str,
    candidates: np.ndarray,
    p_released: np.ndarray,
    reference: np.ndarray,
    calibration: Iterator[np.ndarray],
    alpha: float | None,
) -> np.ndarray:
    """The attacker: flags candidates whose statistic exceeds that of genuine non-members at
    their (1 − alpha) quantile (alpha None: their maximum). It sees the released frequencies,
    its reference and genotypes at the released variants, nothing else."""

    def score(g: np.ndarray) -> np.ndarray:
        if statistic == "lr":
            return lr_statistic(g, p_released, reference, floor=1 / (4 * N_GROUP))
        return homer_statistic(g, p_released, reference)

    null = np.concatenate([score(g) for g in calibration])
    threshold = null.max() if alpha is None else np.quantile(null, 1 - alpha, method="higher")
    return score(candidates) > threshold


def test_lr_attack_is_held_to_the_bound_on_what_is_released(tmp_path: Path) -> None:
    rng = np.random.default_rng(2009)
    maf = np.exp(rng.uniform(math.log(0.005), math.log(0.5), M))
    truth = np.where(rng.random(M) < 0.5, maf, 1 - maf)  # the population's ALT frequencies
    ids = [f"rs{100_000 + j}" for j in range(M)]

    group = genotypes(rng, truth, N_GROUP)
    p_pool = released_frequencies(tmp_path, group, ids)
    assert np.allclose(p_pool, group.mean(axis=0) / 2, atol=1e-6)

    # Candidates: the group and as many held-out non-members, mixed; membership is ours alone.
    others = genotypes(rng, truth, N_GROUP)
    shuffle = rng.permutation(2 * N_GROUP)
    candidates = np.concatenate([group, others])[shuffle]
    member = (shuffle < N_GROUP)

    # (a) everything released; threshold at the maximum of 2,000 non-members (FPR ≤ 1/2,001)
    flagged = attack("lr", candidates, p_pool, truth, non_members(rng, truth, 2_000), alpha=None)
    power_all = flagged[member].mean()
    print(f"\nall {M} variants: LR power {power_all:.3f}, FPR {flagged[~member].mean():.4f}")
    assert power_all > 0.7

    # (b) what Strongroom lets out, measured as the product measures it
    selection = select_releasable(N_GROUP, p_pool, attackers_reference(p_pool, N_GROUP), BOUND,
                                  ALPHA)
    released = selection.released
    assert 0.05 * M < released.sum() < 0.5 * M and selection.power <= BOUND

    calibrating = 20_000
    seen, p_seen, ref_seen = candidates[:, released], p_pool[released], truth[released]
    lr_flags = attack("lr", seen, p_seen, ref_seen,
                      non_members(rng, ref_seen, calibrating), alpha=ALPHA)
    homer_flags = attack("homer", seen, p_seen, ref_seen,
                         non_members(rng, ref_seen, calibrating), alpha=ALPHA)
    lr_power, homer_power = lr_flags[member].mean(), homer_flags[member].mean()

    # Sampling error of the measured power if the true power were the bound: members detected
    # are binomial (n = 1,000), and the threshold, a quantile of 20,000 non-members, has a
    # false-positive rate off 1e-3 by sd √(α(1−α)/20,000), which moves the power by the ratio
    # of densities at the threshold (delta method, normal model). Three sds.
    z_a, z_b = norm.isf(ALPHA), norm.ppf(BOUND)
    sd = math.sqrt(
        BOUND * (1 - BOUND) / N_GROUP
        + (norm.pdf(z_b) / norm.pdf(z_a)) ** 2 * ALPHA * (1 - ALPHA) / calibrating
    )
    tolerance = 3 * sd
    print(
        f"released {int(released.sum())} of {M}: analytic power {selection.power:.3f}, "
        f"LR attack {lr_power:.3f} (FPR {lr_flags[~member].mean():.4f}), "
        f"Homer {homer_power:.3f} (FPR {homer_flags[~member].mean():.4f}), "
        f"tolerance {tolerance:.3f}"
    )
    assert lr_power <= BOUND + tolerance
    assert homer_power <= BOUND + tolerance
    # the held-out non-members are flagged at about the rate the threshold was set for
    assert lr_flags[~member].mean() <= 0.01 and homer_flags[~member].mean() <= 0.01
