"""The Cox fit and Harrell's C at 500,000 rows: Strongroom's vectorised Efron fit
(enclave/analyses/proportional_hazards.py) against lifelines' CoxPHFitter, the anchor it
replaced, in the same run, with how far apart their estimates are.

A synthetic follow-up: age, BMI, sex and a four-level group (three dummies), hazards from a
known model, censoring over twelve years; times in whole days (lifelines' batch path) or
distinct (its single path, what the how-to's study hits).

    python benchmarks/cox.py [--rows 500000] [--times days|distinct] [--runs 3]
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from lifelines import CoxPHFitter
from lifelines.utils import concordance_index

from strongroom.enclave.analyses import proportional_hazards as ph


def follow_up(n: int, days: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(2026)
    age, bmi = rng.normal(60, 10, n), rng.normal(27, 4.5, n)
    sex, group = rng.integers(0, 2, n), rng.integers(0, 4, n)
    x = np.column_stack([age, bmi, sex, group == 1, group == 2, group == 3]).astype(float)
    hazard = np.exp(0.04 * (age - 60) + 0.03 * (bmi - 27) + 0.3 * sex + 0.2 * (group == 1)
                    - 0.15 * (group == 3))
    onset, end = rng.exponential(75 / hazard), rng.uniform(0, 12, n)
    t = np.minimum(onset, end)
    if days:
        t = np.ceil(t * 365.25) / 365.25
    return x - x.mean(axis=0), t, (onset <= end).astype(float)  # centred, as survival.cox


def best(work: Callable[[], Any], runs: int) -> tuple[Any, float]:
    timed = []
    for _ in range(runs):
        started = time.perf_counter()
        out = work()
        timed.append(time.perf_counter() - started)
    return out, min(timed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--times", choices=("days", "distinct"), default="distinct")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    x, t, e = follow_up(args.rows, args.times == "days")
    print(f"{args.rows:,} rows, {e.mean():.1%} events, {len(np.unique(t)):,} distinct times")
    fitted, new_fit = best(lambda: ph.fit(x, t, e), args.runs)
    risk = x @ fitted.beta
    c, new_c = best(lambda: ph.concordance(t, e, risk), args.runs)
    frame = pd.DataFrame({**{f"x{i}": x[:, i] for i in range(x.shape[1])},
                          "duration": t, "observed": e})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        old, old_fit = best(lambda: CoxPHFitter().fit(frame, duration_col="duration",
                                                      event_col="observed"), 1)
        started = time.perf_counter()
        old_c_value = old.concordance_index_
        old_c = time.perf_counter() - started
    print("| | lifelines (anchor) | Strongroom | ratio |")
    print("|---|---|---|---|")
    for what, a, b in (("fit", old_fit, new_fit), ("concordance", old_c, new_c),
                       ("both", old_fit + old_c, new_fit + new_c)):
        print(f"| {what} | {a:.2f} s | {b:.3f} s | {a / b:.0f}× |")
    beta = old.params_.to_numpy()
    print(f"largest |Δβ| / SE {np.max(np.abs(fitted.beta - beta) / fitted.se):.1e}; "
          f"log-likelihoods {fitted.log_likelihood:.6f} and {old.log_likelihood_:.6f}; "
          f"C {c:.12f}, lifelines on the same risk {concordance_index(t, -risk, e):.12f}, "
          f"lifelines' own fit {old_c_value:.12f} (Strongroom best of {args.runs} runs, "
          f"lifelines one)")


if __name__ == "__main__":
    main()
