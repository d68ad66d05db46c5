"""How far a released GWAS is from the exact fit, variant by variant (issue 54's precision target).

    .venv/bin/python benchmarks/gwas_release_precision.py --participants 20000
    .venv/bin/python benchmarks/gwas_release_precision.py --runs /tmp/gwas-runs.pkl  # again

Builds the demo at the size asked (its cohort, simulated genotypes and planted loci, its
people; the jobs left out, no answer floors), so that its GWAS of BMI among women (birth year
and ten principal components) goes through the enclave as a researcher asks for it. The fit
and what the genetics rules released are taken where the output service applies them
(`outputs.genetics.release`), and every released variant is compared with the exact fit
(the engine's, which matches plink2 --glm to 5e-6: benchmarks/gwas.py): its effect in
standard errors, |β released − β| / SE, and |−log10 p released − −log10 p|. The runs are
saved (``--save``) so that the release can be measured again without the demo.

Issue 54's target: released β within 0.1 SE of plink2's and −log10 p within 0.1 for every
released variant. Each run is released three times: under the shipped rules, and under the rules'
precision (``--precision``, 0.1) for effects (the genetics rules' ``max_effect_step``), then
for effects and −log10 p (and ``max_log10_p_step``), which withhold the variants whose
rounding would be coarser. The
figures are printed by minor allele count and by −log10 p, beside what one participant can
move each figure by (the release's rounding step is at least that).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import os
import pickle
import tempfile
import time
from pathlib import Path

import polars as pl

from strongroom.genomics.release import FreshLedger, Released, p_values, release
from strongroom.genomics.study import GwasRun
from strongroom.outputs.genetics import genetic_rules
from strongroom.outputs.rules import load_rules

MAC_BANDS = (0, 200, 1_000, 5_000, 20_000, 10**12)
P_BANDS = (0.0, 2.0, 7.3, 20.0, 100.0, float("inf"))


def captured_runs(participants: int, seed: int, variants: int) -> list[GwasRun]:
    """The demo's GWAS runs as the output service fitted them."""
    import strongroom.outputs.genetics as genetics
    from strongroom.access.context import Settings
    from strongroom.demo.run import run_demo

    runs: list[GwasRun] = []
    real = genetics.release

    def recording(run: GwasRun, *args: object, **kwargs: object) -> Released:
        runs.append(run)
        return real(run, *args, **kwargs)  # type: ignore[arg-type]

    genetics.release = recording  # type: ignore[assignment]
    settings = Settings(password_profile="CHEAPEST", withheld_seconds=0.0,
                        definition_seconds=0.0, analysis_seconds=0.0)
    with tempfile.TemporaryDirectory(prefix="strongroom-precision-") as tmp:
        run_demo(Path(tmp) / "demo", participants=participants, seed=seed,
                 variants=variants, jobs=False, settings=settings)
    genetics.release = real  # type: ignore[assignment]
    return runs


def compared(run: GwasRun, released: Released) -> pl.DataFrame:
    """Each released variant beside its exact fit."""
    exact = run.results.filter(pl.col("beta").is_not_null() & pl.col("se").is_not_null())
    df = None if run.spec.model == "logistic" else _df(run)
    _, exact_nlp = p_values((exact["beta"] / exact["se"]).to_numpy(), df)
    exact = exact.select("trait", "id", "mac", pl.col("beta").alias("beta_exact"),
                         pl.col("se").alias("se_exact"),
                         pl.Series("nlp_exact", exact_nlp))
    table = released.table.select("trait", "id", "beta", "se", "neg_log10_p")
    return table.join(exact, on=["trait", "id"], how="inner").with_columns(
        ((pl.col("beta") - pl.col("beta_exact")).abs() / pl.col("se_exact")).alias("beta_off"),
        (pl.col("neg_log10_p") - pl.col("nlp_exact")).abs().alias("nlp_off"),
        ((pl.col("se") - pl.col("se_exact")).abs() / pl.col("se_exact")).alias("se_off"))


def _df(run: GwasRun) -> int:
    spread = next(iter(run.spread.values()), None)
    return spread.df if spread is not None else 1


def report(table: pl.DataFrame, title: str) -> None:
    within = (pl.col("beta_off") <= 0.1) & (pl.col("nlp_off") <= 0.1)
    print(f"\n{title}: {table.height:,} released variants; β within 0.1 SE "
          f"{(table['beta_off'] <= 0.1).sum():,}, −log10 p within 0.1 "
          f"{(table['nlp_off'] <= 0.1).sum():,}, both {table.filter(within).height:,}")
    if table.is_empty():
        return
    for name, column, bands in (("minor allele count", "mac", MAC_BANDS),
                                ("exact −log10 p", "nlp_exact", P_BANDS)):
        print(f"  by {name}:")
        print(f"  {'band':>18} {'variants':>9} {'β ok':>7} {'p ok':>7} {'max β off (SE)':>15}"
              f" {'max −log10 p off':>17} {'max SE off':>11}")
        for low, high in itertools.pairwise(bands):
            part = table.filter((pl.col(column) >= low) & (pl.col(column) < high))
            if part.is_empty():
                continue
            print(f"  {f'{low:g}–{high:g}':>18} {part.height:>9,} "
                  f"{(part['beta_off'] <= 0.1).mean():>7.1%} "
                  f"{(part['nlp_off'] <= 0.1).mean():>7.1%} "
                  f"{part['beta_off'].max():>15.3f} {part['nlp_off'].max():>17.3f} "
                  f"{part['se_off'].max():>11.2%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=20_000)
    parser.add_argument("--variants", type=int, default=1_000,
                        help="markers in simulated regions (three times as many unlinked)")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--runs", type=Path, help="measure these saved runs, not a new demo")
    parser.add_argument("--save", type=Path, help="save the demo's runs here")
    parser.add_argument("--precision", type=float, default=0.1,
                        help="also release under the rules' precision (genetics: "
                             "max_effect_step and max_log10_p_step) set to this")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f} at start")
    started = time.perf_counter()
    if args.runs:
        runs: list[GwasRun] = pickle.loads(args.runs.read_bytes())
    else:
        runs = captured_runs(args.participants, args.seed, args.variants)
        print(f"the demo at {args.participants:,}: {time.perf_counter() - started:.0f} s")
        if args.save:
            args.save.write_bytes(pickle.dumps(runs))
    shipped = genetic_rules(load_rules())
    effects = dataclasses.replace(shipped, max_effect_step=args.precision)
    both = dataclasses.replace(effects, max_log10_p_step=args.precision)
    for run in runs:
        if run.results.is_empty():
            continue
        for rules, which in ((shipped, "the shipped rules"),
                             (effects, f"max_effect_step {args.precision:g}"),
                             (both, f"max_effect_step and max_log10_p_step {args.precision:g}")):
            released = release(run, rules, FreshLedger(), salt=b"benchmark")
            report(compared(run, released),
                   f"GWAS of {', '.join(run.spec.traits)} under {which} ({run.spec.model}; "
                   f"{', '.join(f'{t} n={run.groups[t].size:,}' for t in run.spec.traits)}; "
                   f"{run.tested:,} variants tested; withheld: {released.withheld})")


if __name__ == "__main__":
    main()
